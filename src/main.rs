//! The `berth` binary: parse the command line, call the library, report errors.

mod cli;

fn main() {
    // the pod monitor: checked before any parsing, it is a long-lived process of its own
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|a| a == berth::pod::monitor::ARG) {
        if let Some(dir) = args.next() {
            berth::pod::monitor::main(std::path::Path::new(&dir));
        }
    }
    std::process::exit(cli::main());
}
