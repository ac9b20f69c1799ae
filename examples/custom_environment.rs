//! Your own environment and your own method in the `qval` command, without forking qval.
//!
//! ```text
//! cargo run --release --example custom_environment -- run examples/corridor.toml
//! cargo run --release --example custom_environment -- methods      # lists `steps-left` too
//! ```
//!
//! The binary below is the whole `qval` command plus two registrations: an environment type
//! `corridor` (a walk along a slippery corridor to its far end) with its collector and
//! reference policy, and a method type `steps-left` (minus the distance to the end). The
//! experiment file `examples/corridor.toml` uses both, next to the built-in random baseline.

#[path = "support/corridor.rs"]
mod corridor;

fn main() {
    std::process::exit(qval::cli::main_with(corridor::registry()));
}
