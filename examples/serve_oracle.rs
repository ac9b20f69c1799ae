//! A loopback OpenAI-compatible server that answers FrozenLake prompts with their true
//! values (the test oracle of qval-testkit), for trying the LLM methods without a model.
//!
//! ```text
//! cargo run --release --example serve_oracle -- --noise 0.1 --seconds 600 &
//! cargo run --release --example quickstart -- --base-url http://127.0.0.1:PORT/v1 --model oracle
//! ```

use clap::Parser;
use qval_testkit::{Oracle, ServerConfig, TestServer};

#[derive(Parser)]
struct Args {
    /// Standard deviation of the Gaussian noise added to every value.
    #[arg(long, default_value_t = 0.0)]
    noise: f64,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 600)]
    seconds: u64,
}

fn main() {
    let args = Args::parse();
    let server = TestServer::start(ServerConfig {
        oracle: Oracle {
            noise: args.noise,
            seed: 0,
        },
        ..Default::default()
    });
    println!("{}", server.base_url());
    std::thread::sleep(std::time::Duration::from_secs(args.seconds));
    println!("served {} requests", server.requests());
}
