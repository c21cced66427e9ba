//! The parent ↔ container-init channel: typed messages over a `SOCK_SEQPACKET` socketpair, and
//! fd passing (`SCM_RIGHTS`) for terminals.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    send, sendmsg, socketpair,
};

use super::{Result, Step};

/// What the two sides tell each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// init → parent: setup finished, waiting to be started.
    Ready,
    /// parent → init: carry on (cgroup joined; or, for `run`, start the process).
    Go,
    /// init → parent: something was adjusted (a clamped limit); shown to the user.
    Warning(String),
    /// init → parent: setup failed at the named step.
    Error(String),
    /// init → parent: the master end of the container's terminal rides along (SCM_RIGHTS).
    Terminal,
    /// init → parent: the seccomp notify listener fd rides along, for `listenerPath`.
    Seccomp,
    /// init → parent: the namespaces exist; run prestart/createRuntime hooks, send the state.
    Hooks,
    /// parent → init: the container's state JSON, for the hooks the init runs.
    State(String),
}

impl Msg {
    fn encode(&self) -> Vec<u8> {
        let (tag, text) = match self {
            Msg::Ready => (b'R', ""),
            Msg::Go => (b'G', ""),
            Msg::Warning(t) => (b'W', t.as_str()),
            Msg::Error(t) => (b'E', t.as_str()),
            Msg::Terminal => (b'T', ""),
            Msg::Seccomp => (b'S', ""),
            Msg::Hooks => (b'H', ""),
            Msg::State(t) => (b'J', t.as_str()),
        };
        let mut v = Vec::with_capacity(1 + text.len());
        v.push(tag);
        v.extend_from_slice(text.as_bytes());
        v
    }

    fn decode(b: &[u8]) -> Option<Msg> {
        let text = || String::from_utf8_lossy(&b[1..]).into_owned();
        Some(match b.first()? {
            b'R' => Msg::Ready,
            b'G' => Msg::Go,
            b'W' => Msg::Warning(text()),
            b'E' => Msg::Error(text()),
            b'T' => Msg::Terminal,
            b'S' => Msg::Seccomp,
            b'H' => Msg::Hooks,
            b'J' => Msg::State(text()),
            _ => return None,
        })
    }
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel(OwnedFd);

/// Largest message: an error text.
const MAX_MSG: usize = 64 * 1024;

impl Channel {
    /// A connected pair, close-on-exec on both ends.
    pub fn pair() -> Result<(Channel, Channel)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .step(|| "create init socketpair".into())?;
        Ok((Channel(a), Channel(b)))
    }

    /// Send a message.
    pub fn send(&self, m: &Msg) -> Result<()> {
        let mut b = m.encode();
        b.truncate(MAX_MSG);
        send(self.0.as_raw_fd(), &b, MsgFlags::MSG_NOSIGNAL)
            .map(|_| ())
            .step(|| "send to container init".into())
    }

    /// Receive a message; `None` when the other end closed (process exited or exec'd).
    pub fn recv(&self) -> Result<Option<Msg>> {
        Ok(self.recv_with_fd()?.map(|(m, _)| m))
    }

    /// Send a message with an fd attached.
    pub fn send_with_fd(&self, m: &Msg, fd: BorrowedFd<'_>) -> Result<()> {
        send_fd(self.0.as_fd(), fd, &m.encode())
    }

    /// Receive a message and the fd that came with it, if any.
    pub fn recv_with_fd(&self) -> Result<Option<(Msg, Option<OwnedFd>)>> {
        loop {
            match recv_raw(self.0.as_fd()) {
                Ok((b, _)) if b.is_empty() => return Ok(None),
                Ok((b, fd)) => return Ok(Msg::decode(&b).map(|m| (m, fd))),
                Err(e) if e.errno() == Some(libc::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// True if the other end is closed (its process exited), checked without blocking.
    pub fn peer_closed(&self) -> bool {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::empty())];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
            && fds[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLHUP))
    }

    /// The underlying socket.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Send `fd` with `payload` over the unix socket `sock` (the console-socket protocol).
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>, payload: &[u8]) -> Result<()> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(payload)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)
        .map(|_| ())
        .step(|| "send terminal fd".into())
}

/// Receive one fd (and its payload) sent with [`send_fd`].
pub fn recv_fd(sock: BorrowedFd<'_>) -> Result<(OwnedFd, Vec<u8>)> {
    let (payload, fd) = recv_raw(sock)?;
    let fd = fd.ok_or_else(|| super::SysError::other("receive terminal fd", "no fd in message"))?;
    Ok((fd, payload))
}

/// Send `payload` with any number of fds (up to 16) over a unix socket.
pub fn send_fds(sock: BorrowedFd<'_>, fds: &[BorrowedFd<'_>], payload: &[u8]) -> Result<()> {
    let raw: Vec<std::os::fd::RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let iov = [IoSlice::new(payload)];
    let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &cmsg };
    sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)
        .map(|_| ())
        .step(|| "send fds".into())
}

/// Receive one message and every fd that came with it; an empty message is the peer's end.
pub fn recv_fds(sock: BorrowedFd<'_>) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
    loop {
        match recv_all(sock) {
            Err(e) if e.errno() == Some(libc::EINTR) => continue,
            r => return r,
        }
    }
}

/// One message and at most one fd (extra fds are closed).
fn recv_raw(sock: BorrowedFd<'_>) -> Result<(Vec<u8>, Option<OwnedFd>)> {
    let (buf, mut fds) = recv_all(sock)?;
    let first = if fds.is_empty() {
        None
    } else {
        Some(fds.swap_remove(0))
    };
    Ok((buf, first))
}

/// One message and all its fds.
fn recv_all(sock: BorrowedFd<'_>) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut buf = vec![0u8; MAX_MSG];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 16]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .step(|| "receive from socket".into())?;
    let n = msg.bytes;
    let mut fds = Vec::new();
    for c in msg.cmsgs().step(|| "read control message".into())? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            fds.extend(raw.into_iter().map(super::sys::own_fd));
        }
    }
    buf.truncate(n);
    Ok((buf, fds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let (a, b) = Channel::pair().unwrap();
        for m in [
            Msg::Ready,
            Msg::Go,
            Msg::Terminal,
            Msg::Warning("w".into()),
            Msg::Error("mount x: bad".into()),
        ] {
            a.send(&m).unwrap();
            assert_eq!(b.recv().unwrap(), Some(m));
        }
        assert!(!b.peer_closed());
        drop(a);
        assert!(b.peer_closed());
        assert_eq!(b.recv().unwrap(), None);
    }

    #[test]
    fn fds_pass() {
        let (a, b) = Channel::pair().unwrap();
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        send_fd(a.fd(), file.as_fd(), b"/dev/pts/7").unwrap();
        let (fd, payload) = recv_fd(b.fd()).unwrap();
        assert_eq!(payload, b"/dev/pts/7");
        assert!(fd.as_raw_fd() > 2);
        let two = std::fs::File::open("/proc/self/status").unwrap();
        send_fds(a.fd(), &[file.as_fd(), two.as_fd()], b"x").unwrap();
        let (payload, fds) = recv_fds(b.fd()).unwrap();
        assert_eq!((payload.as_slice(), fds.len()), (&b"x"[..], 2));
        send_fds(a.fd(), &[], b"none").unwrap();
        assert_eq!(recv_fds(b.fd()).unwrap().1.len(), 0);
    }
}
