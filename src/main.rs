//! The `berth` binary: parse the command line, call the library, report errors.

mod cli;

fn main() {
    // the pod monitor: checked before any parsing, it is a long-lived process of its own
    berth::pod::hook();
    std::process::exit(cli::main());
}
