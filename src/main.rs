//! The `berth` binary: parse the command line, call the library, report errors.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
