//! Standard output that survives a closed pipe (`qval evaluate RUN | head`).

use std::io::Write as _;

/// Writes `text` and a newline to standard output; when the reader has gone (a closed
/// pipe), exits quietly with status 0 instead of panicking.
pub fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to standard output: {e}");
        std::process::exit(1);
    }
}
