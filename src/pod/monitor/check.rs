//! One run of a network probe, driven by the monitor's `poll(2)` loop: a non-blocking socket
//! made in the pod's network namespace (so no binary is needed in the image), then a TCP
//! connect, an HTTP/1.1 GET (HTTPS: see `tls`), or a grpc.health.v1 Check over a minimal
//! HTTP/2 exchange (the `h2` crate needs an async runtime; the monitor has none). Each step
//! reads or writes what the socket takes without blocking; the monitor cuts it at its
//! deadline.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::poll::PollFlags;
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6, connect, socket,
};

use crate::http2;
use crate::pod::probe::Handler;

/// Where a probe's sockets are made: the pod's network namespace (None: the host's).
pub(super) struct Netns {
    pub(super) pod: Option<OwnedFd>,
    pub(super) host: Option<OwnedFd>,
}

impl Netns {
    /// A non-blocking TCP socket in the pod's network namespace, connecting to `to`. The
    /// monitor has one thread: it joins the pod's namespace for the `socket(2)` call only
    /// (a socket stays in the namespace it was made in).
    fn connect(&self, to: SocketAddr) -> std::io::Result<TcpStream> {
        let family = match to {
            SocketAddr::V4(_) => AddressFamily::Inet,
            SocketAddr::V6(_) => AddressFamily::Inet6,
        };
        let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
        let fd = match (&self.pod, &self.host) {
            (Some(pod), Some(host)) => {
                nix::sched::setns(pod, nix::sched::CloneFlags::CLONE_NEWNET)?;
                let fd = socket(family, SockType::Stream, flags, None);
                nix::sched::setns(host, nix::sched::CloneFlags::CLONE_NEWNET)
                    .expect("return to the monitor's network namespace");
                fd?
            }
            _ => socket(family, SockType::Stream, flags, None)?,
        };
        let r = match to {
            SocketAddr::V4(a) => {
                connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(a))
            }
            SocketAddr::V6(a) => {
                connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn6::from(a))
            }
        };
        match r {
            Ok(()) | Err(nix::errno::Errno::EINPROGRESS) => Ok(TcpStream::from(fd)),
            Err(e) => Err(e.into()),
        }
    }
}

/// Where a check stands.
pub(super) enum Progress {
    Pending,
    /// Its result, and a message saying why when it failed.
    Done(bool, String),
}

enum Proto {
    Tcp,
    Http { status: Option<u16> },
    Https(Box<super::tls::Tls>),
    Grpc(Box<Grpc>),
}

/// A network probe in flight.
pub(super) struct Net {
    sock: TcpStream,
    connected: bool,
    proto: Proto,
    /// What is still to be written.
    out: Vec<u8>,
    /// What was read and not consumed yet.
    buf: Vec<u8>,
    to: SocketAddr,
}

impl Net {
    /// Start a check of `h` (a network handler) against `ip` (the pod's).
    pub(super) fn start(h: &Handler, ip: IpAddr, ns: &Netns) -> Result<Net, String> {
        let (host, port) = match h {
            Handler::Http { host, port, .. } | Handler::Tcp { host, port } => {
                (host.as_deref(), *port)
            }
            Handler::Grpc { port, .. } => (None, *port),
            Handler::Exec { .. } => return Err("not a network probe".into()),
        };
        let ip = match host {
            Some(h) => h
                .parse::<IpAddr>()
                .map_err(|_| format!("host {h:?} is not an IP address"))?,
            None => ip,
        };
        let to = SocketAddr::new(ip, port);
        let sock = ns.connect(to).map_err(|e| format!("dial tcp {to}: {e}"))?;
        let authority = match to {
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
            a => a.to_string(),
        };
        let (proto, out) = match h {
            Handler::Tcp { .. } => (Proto::Tcp, Vec::new()),
            Handler::Http {
                https,
                path,
                headers,
                ..
            } => {
                let req = http_request(&authority, path, headers);
                if *https {
                    let tls = super::tls::Tls::new(ip, req)?;
                    (Proto::Https(Box::new(tls)), Vec::new())
                } else {
                    (Proto::Http { status: None }, req)
                }
            }
            Handler::Grpc { service, .. } => {
                let g = Grpc::default();
                let req = g.request(&authority, service);
                (Proto::Grpc(Box::new(g)), req)
            }
            Handler::Exec { .. } => unreachable!("checked above"),
        };
        Ok(Net {
            sock,
            connected: false,
            proto,
            out,
            buf: Vec::new(),
            to,
        })
    }

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// What to wait for on the socket.
    pub(super) fn interest(&self) -> PollFlags {
        let wants_write = match &self.proto {
            Proto::Https(t) => t.wants_write(),
            _ => !self.out.is_empty(),
        };
        if !self.connected || wants_write {
            PollFlags::POLLOUT
        } else {
            PollFlags::POLLIN
        }
    }

    /// Go as far as the socket allows.
    pub(super) fn advance(&mut self) -> Progress {
        if !self.connected {
            match self.sock.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => {
                    return Progress::Done(false, format!("dial tcp {}: {e}", self.to));
                }
            }
            // a connect still under way shows no error and no peer
            if self.sock.peer_addr().is_err() {
                return Progress::Pending;
            }
            self.connected = true;
            if matches!(self.proto, Proto::Tcp) {
                return Progress::Done(true, String::new());
            }
        }
        if let Proto::Https(t) = &mut self.proto {
            return t.advance(&mut self.sock);
        }
        // write what is pending, then read what came
        while !self.out.is_empty() {
            match self.sock.write(&self.out) {
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Progress::Pending,
                Err(e) => return Progress::Done(false, format!("write to {}: {e}", self.to)),
            }
        }
        let mut eof = false;
        let mut chunk = [0u8; 4096];
        loop {
            match self.sock.read(&mut chunk) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    if self.buf.len() > 1 << 16 {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Progress::Done(false, format!("read from {}: {e}", self.to)),
            }
        }
        let p = match &mut self.proto {
            Proto::Http { status } => http_status(&self.buf, status),
            Proto::Grpc(g) => g.consume(&mut self.buf, &mut self.out),
            Proto::Tcp | Proto::Https(_) => unreachable!("handled above"),
        };
        match p {
            Progress::Pending if eof => {
                Progress::Done(false, format!("{}: the connection closed early", self.to))
            }
            Progress::Pending if !self.out.is_empty() => self.advance(),
            p => p,
        }
    }
}

/// kubelet's request: GET, its User-Agent and Accept unless the probe sets them.
pub(super) fn http_request(authority: &str, path: &str, headers: &[(String, String)]) -> Vec<u8> {
    let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    let mut r = format!("GET {path} HTTP/1.1\r\n");
    if !has("host") {
        r.push_str(&format!("Host: {authority}\r\n"));
    }
    if !has("user-agent") {
        r.push_str("User-Agent: kube-probe/1.26\r\n");
    }
    if !has("accept") {
        r.push_str("Accept: */*\r\n");
    }
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("Connection: close\r\n\r\n");
    r.into_bytes()
}

/// The result once the status line is in: 200–399 succeed (a redirect is not followed).
pub(super) fn http_status(buf: &[u8], status: &mut Option<u16>) -> Progress {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(_) | Err(httparse::Error::TooManyHeaders) if resp.code.is_some() => {
            let code = resp.code.expect("checked");
            *status = Some(code);
            if (200..400).contains(&code) {
                Progress::Done(true, String::new())
            } else {
                Progress::Done(false, format!("HTTP probe failed with statuscode: {code}"))
            }
        }
        Ok(_) => Progress::Pending,
        Err(e) => Progress::Done(false, format!("not an HTTP response: {e}")),
    }
}

/// A grpc.health.v1.Health/Check call on stream 1 of a fresh HTTP/2 connection.
#[derive(Default)]
struct Grpc {
    decoder: loona_hpack::Decoder<'static>,
    /// The response message's bytes (gRPC's 5-byte prefix first).
    message: Vec<u8>,
}

impl Grpc {
    /// The client's preface, SETTINGS, and the request (HEADERS, DATA).
    fn request(&self, authority: &str, service: &str) -> Vec<u8> {
        let mut out = http2::PREFACE.to_vec();
        out.extend(http2::frame(http2::SETTINGS, 0, 0, &[]));
        let block = loona_hpack::Encoder::new().encode(vec![
            (&b":method"[..], &b"POST"[..]),
            (b":scheme", b"http"),
            (b":path", b"/grpc.health.v1.Health/Check"),
            (b":authority", authority.as_bytes()),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            (b"user-agent", b"kube-probe/1.26"),
        ]);
        out.extend(http2::frame(http2::HEADERS, http2::END_HEADERS, 1, &block));
        // HealthCheckRequest { string service = 1 }
        let mut msg = Vec::new();
        if !service.is_empty() {
            msg.push(0x0a);
            varint(service.len() as u64, &mut msg);
            msg.extend_from_slice(service.as_bytes());
        }
        let mut data = vec![0u8];
        data.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        data.extend(msg);
        out.extend(http2::frame(http2::DATA, http2::END_STREAM, 1, &data));
        out
    }

    /// Take the complete frames of `buf`, answering SETTINGS and PING in `out`.
    fn consume(&mut self, buf: &mut Vec<u8>, out: &mut Vec<u8>) -> Progress {
        while let Some((h, true)) = http2::FrameHeader::peek(buf) {
            let (kind, flags, stream) = (h.kind, h.flags, h.stream);
            let end = http2::FrameHeader::SIZE + h.len;
            let payload: Vec<u8> = buf[http2::FrameHeader::SIZE..end].to_vec();
            buf.drain(..end);
            match kind {
                http2::SETTINGS if flags & http2::ACK == 0 => {
                    out.extend(http2::frame(http2::SETTINGS, http2::ACK, 0, &[]))
                }
                http2::PING if flags & http2::ACK == 0 => {
                    out.extend(http2::frame(http2::PING, http2::ACK, 0, &payload))
                }
                http2::GOAWAY => {
                    return Progress::Done(false, "the gRPC server closed the connection".into());
                }
                http2::RST_STREAM if stream == 1 => {
                    return Progress::Done(false, "the gRPC server reset the call".into());
                }
                http2::DATA if stream == 1 => {
                    self.message.extend_from_slice(&payload);
                    if self.message.len() >= 5 {
                        let n = u32::from_be_bytes([
                            self.message[1],
                            self.message[2],
                            self.message[3],
                            self.message[4],
                        ]) as usize;
                        if self.message.len() >= 5 + n {
                            return serving(&self.message[5..5 + n]);
                        }
                    }
                }
                http2::HEADERS if stream == 1 => {
                    // a header block in one frame (END_HEADERS), as servers send these
                    let Ok(headers) = self.decoder.decode(&payload) else {
                        return Progress::Done(false, "undecodable gRPC headers".into());
                    };
                    let get = |n: &[u8]| {
                        headers
                            .iter()
                            .find(|(k, _)| k == n)
                            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                    };
                    if let Some(code) = get(b"grpc-status").filter(|c| c != "0") {
                        let desc = get(b"grpc-message").unwrap_or_default();
                        return Progress::Done(
                            false,
                            format!("rpc error: code = {code} desc = {desc}"),
                        );
                    }
                    if flags & http2::END_STREAM != 0 {
                        return Progress::Done(false, "the gRPC call ended with no answer".into());
                    }
                }
                _ => {}
            }
        }
        Progress::Pending
    }
}

/// HealthCheckResponse { ServingStatus status = 1 }: SERVING is 1.
fn serving(msg: &[u8]) -> Progress {
    let mut status = 0;
    let mut i = 0;
    while i < msg.len() {
        let key = msg[i];
        i += 1;
        let Some((v, used)) = read_varint(&msg[i..]) else {
            break;
        };
        i += used;
        match key {
            0x08 => status = v,
            // any other field: a varint skipped above, or a length-delimited one
            k if k & 7 == 2 => i += v as usize,
            _ => {}
        }
    }
    const NAMES: [&str; 4] = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];
    if status == 1 {
        Progress::Done(true, String::new())
    } else {
        let name = NAMES.get(status as usize).copied().unwrap_or("UNKNOWN");
        Progress::Done(
            false,
            format!("service unhealthy (responded with {name:?})"),
        )
    }
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, x) in b.iter().enumerate().take(10) {
        v |= u64::from(x & 0x7f) << (7 * i);
        if x & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_status_lines_decide() {
        let mut s = None;
        assert!(matches!(
            http_status(b"HTTP/1.1 204 No Content\r\n", &mut s),
            Progress::Done(true, _)
        ));
        assert!(matches!(
            http_status(b"HTTP/1.1 30", &mut s),
            Progress::Pending
        ));
        assert!(matches!(
            http_status(b"HTTP/1.0 302 Found\r\nLocation: /x\r\n", &mut s),
            Progress::Done(true, _)
        ));
        match http_status(b"HTTP/1.1 503 Unavailable\r\n", &mut s) {
            Progress::Done(false, m) => assert_eq!(m, "HTTP probe failed with statuscode: 503"),
            _ => panic!("503 passed"),
        }
        assert!(matches!(
            http_status(b"SSH-2.0-OpenSSH\r\n", &mut s),
            Progress::Done(false, _)
        ));
    }

    #[test]
    fn grpc_answers_are_read_from_frames() {
        let mut g = Grpc::default();
        let mut out = Vec::new();
        let mut buf = http2::frame(http2::SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]);
        let headers = loona_hpack::Encoder::new().encode(vec![
            (&b":status"[..], &b"200"[..]),
            (b"content-type", b"application/grpc"),
        ]);
        buf.extend(http2::frame(
            http2::HEADERS,
            http2::END_HEADERS,
            1,
            &headers,
        ));
        // split within the DATA frame: pending until it is whole
        let data = http2::frame(http2::DATA, 0, 1, &[0, 0, 0, 0, 2, 0x08, 0x01]);
        buf.extend_from_slice(&data[..10]);
        assert!(matches!(g.consume(&mut buf, &mut out), Progress::Pending));
        assert_eq!(
            out,
            http2::frame(http2::SETTINGS, http2::ACK, 0, &[]),
            "SETTINGS acknowledged"
        );
        buf.extend_from_slice(&data[10..]);
        assert!(matches!(
            g.consume(&mut buf, &mut out),
            Progress::Done(true, _)
        ));
        // NOT_SERVING
        let mut g = Grpc::default();
        let mut buf = http2::frame(http2::DATA, 0, 1, &[0, 0, 0, 0, 2, 0x08, 0x02]);
        match g.consume(&mut buf, &mut Vec::new()) {
            Progress::Done(false, m) => assert!(m.contains("NOT_SERVING"), "{m}"),
            _ => panic!("NOT_SERVING passed"),
        }
        // a trailers-only error
        let mut g = Grpc::default();
        let block = loona_hpack::Encoder::new().encode(vec![
            (&b":status"[..], &b"200"[..]),
            (b"grpc-status", b"5"),
            (b"grpc-message", b"unknown service"),
        ]);
        let mut buf = http2::frame(
            http2::HEADERS,
            http2::END_HEADERS | http2::END_STREAM,
            1,
            &block,
        );
        match g.consume(&mut buf, &mut Vec::new()) {
            Progress::Done(false, m) => {
                assert_eq!(m, "rpc error: code = 5 desc = unknown service")
            }
            _ => panic!("an error status passed"),
        }
        // the request: preface, SETTINGS, HEADERS, DATA with the service's name
        let r = Grpc::default().request("10.0.0.2:9000", "db");
        assert!(r.starts_with(b"PRI * HTTP/2.0"));
        assert!(r.ends_with(&[0, 0, 0, 0, 4, 0x0a, 2, b'd', b'b']));
    }
}
