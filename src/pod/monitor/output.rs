//! The monitor's side of containers' streams: their stdout and stderr pipes into CRI-format
//! logs and out to attached clients, and attached clients' input back in.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::keeper::End;
use super::protocol::attach::{Decoder, Input, Output};
use super::{Ctr, Monitor};
use crate::pod::error::Error;
use crate::pod::logs::LineSplitter;
use crate::pod::store::ContainerState;

/// A container's output pipe.
pub(super) struct Pipe {
    pub fd: OwnedFd,
    pub stream: &'static str,
    pub split: LineSplitter,
}

impl Pipe {
    pub fn new(fd: OwnedFd, stream: &'static str) -> Pipe {
        Pipe {
            fd,
            stream,
            split: LineSplitter::default(),
        }
    }
}

/// A client attached to a container (see [`super::Request::Attach`]).
pub(super) struct Attached {
    pub id: String,
    pub conn: UnixStream,
    pub frames: Decoder,
}

/// What one read of a pipe gave.
enum Got {
    Data(Vec<u8>),
    End,
    Nothing,
}

/// Read a pipe once into the container's log.
fn read_pipe(c: &mut Ctr, i: usize) -> Got {
    let mut buf = [0u8; 65536];
    let r = match nix::unistd::read(c.pipes[i].fd.as_fd(), &mut buf) {
        Ok(0) => Got::End,
        Ok(n) => Got::Data(buf[..n].to_vec()),
        // would block (a process that outlives the init holds the pipe), or broken
        Err(_) => Got::Nothing,
    };
    let Ctr { pipes, log, .. } = c;
    let p = &mut pipes[i];
    let stream = p.stream;
    let mut emit = |partial: bool, text: &[u8]| {
        if let Some(l) = log.as_mut() {
            l.record(stream, partial, text);
        }
    };
    match &r {
        Got::End => {
            p.split.finish(&mut emit);
            pipes.remove(i);
        }
        Got::Data(d) => p.split.feed(d, &mut emit),
        Got::Nothing => {}
    }
    r
}

impl Ctr {
    /// Its stdio from these ends: output pipes, the stdin pipe, or a terminal's master (which
    /// carries the output, the input and the window size).
    pub(super) fn set_stdio(&mut self, ends: Vec<(End, OwnedFd)>) {
        for (end, fd) in ends {
            match end {
                End::Stdout => self.pipes.push(Pipe::new(fd, "stdout")),
                End::Stderr => self.pipes.push(Pipe::new(fd, "stderr")),
                End::Stdin => self.input = Some(fd),
                End::Tty => {
                    if let (Ok(out), Ok(inp)) = (fd.try_clone(), fd.try_clone()) {
                        self.pipes.push(Pipe::new(out, "stdout"));
                        self.input = Some(inp);
                    }
                    self.tty = Some(fd);
                }
            }
        }
    }

    /// The ends a keeper holds a copy of (see [`Ctr::set_stdio`]).
    pub(super) fn stdio_ends(&self) -> Vec<(End, std::os::fd::BorrowedFd<'_>)> {
        if let Some(t) = &self.tty {
            return vec![(End::Tty, t.as_fd())];
        }
        let mut v: Vec<(End, std::os::fd::BorrowedFd<'_>)> = self
            .pipes
            .iter()
            .map(|p| {
                let e = if p.stream == "stderr" {
                    End::Stderr
                } else {
                    End::Stdout
                };
                (e, p.fd.as_fd())
            })
            .collect();
        if let Some(i) = &self.input {
            v.push((End::Stdin, i.as_fd()));
        }
        v
    }
}

impl Monitor {
    /// Read what a container wrote to one of its pipes (by fd) into its log.
    pub(super) fn drain(&mut self, id: &str, fd: i32) {
        let Some(c) = self.ctrs.get_mut(id) else {
            return;
        };
        let Some(i) = c
            .pipes
            .iter()
            .position(|p| std::os::fd::AsRawFd::as_raw_fd(&p.fd) == fd)
        else {
            return;
        };
        let stream = c.pipes[i].stream;
        if let Got::Data(d) = read_pipe(c, i) {
            self.forward(id, stream, &d);
        }
    }

    /// Everything still in an exited container's pipes, without waiting for a process that
    /// outlived its init and keeps them open.
    pub(super) fn drain_all(&mut self, id: &str) {
        let Some(c) = self.ctrs.get_mut(id) else {
            return;
        };
        for p in &mut c.pipes {
            let _ = nix::fcntl::fcntl(
                p.fd.as_fd(),
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
        }
        loop {
            let mut any = false;
            let n = self.ctrs.get(id).map_or(0, |c| c.pipes.len());
            for i in (0..n).rev() {
                let c = self.ctrs.get_mut(id).expect("present");
                let stream = c.pipes[i].stream;
                match read_pipe(c, i) {
                    Got::Data(d) => {
                        self.forward(id, stream, &d);
                        any = true;
                    }
                    Got::End => any = true,
                    Got::Nothing => {}
                }
            }
            if !any {
                return;
            }
        }
    }

    /// Send a container's output to the clients attached to it (a client that cannot take
    /// it within the write timeout is dropped).
    fn forward(&mut self, id: &str, stream: &str, data: &[u8]) {
        if !self.attached.iter().any(|a| a.id == id) {
            return;
        }
        let frame = if stream == "stderr" {
            Output::Stderr(data.to_vec())
        } else {
            Output::Stdout(data.to_vec())
        }
        .encode();
        self.attached.retain(|a| {
            if a.id != id {
                return true;
            }
            a.conn.set_nonblocking(false).ok();
            let ok = (&a.conn).write_all(&frame).is_ok();
            a.conn.set_nonblocking(true).ok();
            ok
        });
    }

    /// Take a client's connection as attached to a running container (after an Ok answer).
    pub(super) fn attach(
        &mut self,
        id: &str,
        conn: UnixStream,
    ) -> std::result::Result<(), (Error, UnixStream)> {
        match self.ctrs.get(id) {
            Some(c) if c.status.state == ContainerState::Running => {}
            Some(_) => {
                return Err((
                    Error::Precondition(format!("container {id} is not running")),
                    conn,
                ));
            }
            None => return Err((Error::NotFound(format!("container {id}")), conn)),
        }
        if super::protocol::write_response(&conn, &super::Response::Ok).is_ok() {
            // writes to a stuck client give up after a while (it is then dropped)
            conn.set_write_timeout(Some(Duration::from_secs(2))).ok();
            conn.set_nonblocking(true).ok();
            self.attached.push(Attached {
                id: id.to_string(),
                conn,
                frames: Decoder::default(),
            });
        }
        Ok(())
    }

    /// Frames from attached client `k`: stdin, end of stdin, terminal size.
    pub(super) fn attach_input(&mut self, k: usize) {
        let mut buf = [0u8; 32 * 1024];
        let gone = match (&self.attached[k].conn).read(&mut buf) {
            Ok(0) => true,
            Ok(n) => {
                self.attached[k].frames.feed(&buf[..n]);
                false
            }
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        };
        let id = self.attached[k].id.clone();
        let mut end_stdin = false;
        while let Some(input) = self.attached[k].frames.next_input() {
            let Some(c) = self.ctrs.get_mut(&id) else {
                break;
            };
            match input {
                Input::Stdin(data) => {
                    if let Some(fd) = &c.input {
                        // a container that does not read its stdin: what does not fit is dropped
                        let _ = nix::unistd::write(fd, &data);
                    }
                }
                // end of the client's stdin ends the container's only with stdinOnce
                Input::EndOfStdin if c.rec.config.stdin_once => end_stdin = true,
                Input::EndOfStdin => {}
                Input::Resize { rows, cols } => {
                    if let Some(t) = &c.tty {
                        let _ = crate::linux::sys::set_window_size(t.as_fd(), rows, cols);
                    }
                }
            }
        }
        if gone {
            self.attached.remove(k);
            // stdinOnce: the container's stdin ends with the first attached client
            end_stdin |= self.ctrs.get(&id).is_some_and(|c| c.rec.config.stdin_once);
        }
        if end_stdin {
            self.end_stdin(&id);
        }
    }

    /// Close a container's stdin (the keeper's copy too: the container reads end of file).
    fn end_stdin(&mut self, id: &str) {
        let Some(c) = self.ctrs.get_mut(id) else {
            return;
        };
        if c.input.take().is_some() && c.tty.is_none() {
            let m = super::keeper::ToKeeper::Release {
                id: id.to_string(),
                end: End::Stdin,
            };
            self.tell_keeper(&m, &[]);
        }
    }
}
