//! Whether a server can be reached, checked before any work.

use crate::{Result, RunnerError};

/// Whether a TCP connection to `url`'s host and port opens within 10 s, so a run whose server
/// is down stops before any work with one line naming `what` and the URL.
///
/// # Errors
/// [`RunnerError::Usage`]: the host does not resolve, or no address accepts a connection.
pub fn reachable(what: &str, url: &str) -> Result<()> {
    use std::net::ToSocketAddrs as _;
    let (rest, port) = match url.split_once("://") {
        Some(("https", r)) => (r, 443),
        Some((_, r)) => (r, 80),
        None => (url, 80),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    let target = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:{port}")
    };
    let unreachable = |why: String| RunnerError::Usage(format!("{what} at {url} is unreachable: {why}"));
    let addrs: Vec<_> = target
        .to_socket_addrs()
        .map_err(|e| unreachable(e.to_string()))?
        .collect();
    let mut last = String::from("no address");
    for a in addrs {
        match std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(10)) {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(unreachable(last))
}
