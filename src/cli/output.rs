//! Writing to stdout as Unix tools do: a reader that went away (`berth pod ls | head`) ends
//! berth quietly, killed by SIGPIPE as coreutils are (status 141); any other failure (a full
//! disk, `> /dev/full`) is one line on stderr and status 1. No command panics on its output.
//! Every verb prints through [`outln!`] and [`out!`] (and [`errln!`] to stderr).

use std::io::{ErrorKind, Write};

/// `println!` that never panics (see the module's notes).
macro_rules! outln {
    () => {
        $crate::cli::output::write(format_args!("\n"))
    };
    ($($t:tt)*) => {
        $crate::cli::output::write(format_args!("{}\n", format_args!($($t)*)))
    };
}

/// `print!` that never panics.
macro_rules! out {
    ($($t:tt)*) => {
        $crate::cli::output::write(format_args!($($t)*))
    };
}

/// `eprintln!` that never panics (a closed stderr loses the message, nothing more).
macro_rules! errln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

/// Write to stdout; a failure ends the process (see the module's notes).
pub fn write(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|_| out.flush()) {
        failed(&e)
    }
}

/// Stdout failed: end as Unix tools do.
pub fn failed(e: &std::io::Error) -> ! {
    if e.kind() == ErrorKind::BrokenPipe {
        berth::linux::sys::die_of_sigpipe();
    }
    let _ = writeln!(std::io::stderr(), "berth: error: write to stdout: {e}");
    std::process::exit(1)
}

/// Did a command end because its reader went away (an error anywhere in its chain is a
/// broken pipe)?
pub fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe)
            || c.downcast_ref::<berth::pod::Error>()
                .is_some_and(|p| p.is_broken_pipe())
    })
}

/// For commands that may wait long between writes (`logs -f`, `events`): end as soon as
/// stdout's reader goes away, not at the next write, as `tail -f` does. A thread waits for
/// the pipe's error (a file or terminal never reports one, and the thread just sleeps).
pub fn end_when_reader_goes() {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    std::thread::spawn(|| {
        let out = std::io::stdout();
        loop {
            let mut fds = [PollFd::new(out.as_fd(), PollFlags::empty())];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {
                    let r = fds[0].revents().unwrap_or(PollFlags::empty());
                    if r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP) {
                        berth::linux::sys::die_of_sigpipe();
                    }
                    if r.contains(PollFlags::POLLNVAL) {
                        return;
                    }
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            }
        }
    });
}
