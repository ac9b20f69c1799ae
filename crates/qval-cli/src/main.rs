//! The `qval` command: see `qval --help`.

fn main() {
    std::process::exit(qval_cli::main_with(qval_cli::Registry::builtin()));
}
