//! SPDY/3.1, the streaming transport kubelet and crictl use by default: the client upgrades
//! an HTTP/1.1 request (`Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version: v4.channel.k8s.io`)
//! and opens one SPDY stream per channel.
//!
//! The streams' types travel in zlib-compressed header blocks whose compressor is primed with
//! SPDY's header dictionary. berth does not decode them: Kubernetes' clients create the streams
//! one after another in a fixed order — error, then stdin, stdout, stderr (no stderr with a
//! terminal), resize (with a terminal; protocol v3 and up) as the request asked for them — and
//! for a port-forward an error and a data stream per connection. berth assigns roles in that
//! order and compresses its own (empty) reply headers without a dictionary, which a zlib
//! reader accepts. Frames are then bridged to the same exec/attach sessions as the WebSocket
//! transport's (see [`super::stream`]).

use std::collections::{HashMap, VecDeque};

use anyhow::{Context, Result, bail};
use flate2::{Compress, Compression, FlushCompress};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::stream::{Pending, exit_status, run_attach, run_exec};

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 1;
const MAX_FRAME: usize = 16 << 20;

/// An HTTP/1.1 request asking to upgrade to SPDY/3.1.
#[derive(Debug)]
pub struct Upgrade {
    pub path: String,
    /// `X-Stream-Protocol-Version` values the client offers, in its order.
    pub protocols: Vec<String>,
}

/// Look at the request on `conn` without consuming it unless it is a SPDY upgrade.
pub async fn peek_upgrade(conn: &mut TcpStream) -> Result<Option<Upgrade>> {
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let n = tokio::time::timeout_at(deadline, conn.peek(&mut buf))
            .await
            .context("no request")??;
        if n == 0 {
            bail!("the client closed the connection");
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..n]).context("malformed HTTP request")? {
            httparse::Status::Partial if n == buf.len() => bail!("request headers too large"),
            httparse::Status::Partial => {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                continue;
            }
            httparse::Status::Complete(len) => {
                let header = |name: &str| {
                    req.headers
                        .iter()
                        .filter(|h| h.name.eq_ignore_ascii_case(name))
                        .filter_map(|h| std::str::from_utf8(h.value).ok())
                        .flat_map(|v| v.split(','))
                        .map(|v| v.trim().to_string())
                        .collect::<Vec<String>>()
                };
                if !header("upgrade")
                    .iter()
                    .any(|u| u.eq_ignore_ascii_case("SPDY/3.1"))
                {
                    return Ok(None);
                }
                let up = Upgrade {
                    path: req.path.unwrap_or("").to_string(),
                    protocols: header("x-stream-protocol-version"),
                };
                let mut consumed = vec![0u8; len];
                conn.read_exact(&mut consumed).await?;
                return Ok(Some(up));
            }
        }
    }
}

/// What a client stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Role {
    Error,
    Stdin,
    Stdout,
    Stderr,
    Resize,
    /// Port-forward connection `n`: its error and data streams.
    PortError(usize),
    PortData(usize),
}

/// A frame as read.
enum Frame {
    Control {
        kind: u16,
        flags: u8,
        data: Vec<u8>,
    },
    Data {
        stream: u32,
        flags: u8,
        data: Vec<u8>,
    },
}

fn control(kind: u16, flags: u8, data: &[u8]) -> Vec<u8> {
    let l = (data.len() as u32).to_be_bytes();
    let k = kind.to_be_bytes();
    let mut v = vec![0x80, 3, k[0], k[1], flags, l[1], l[2], l[3]];
    v.extend_from_slice(data);
    v
}

fn data(stream: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let l = (payload.len() as u32).to_be_bytes();
    let mut v = (stream & 0x7fff_ffff).to_be_bytes().to_vec();
    v.extend_from_slice(&[flags, l[1], l[2], l[3]]);
    v.extend_from_slice(payload);
    v
}

async fn read_frame(r: &mut tokio::net::tcp::OwnedReadHalf) -> Result<Frame> {
    let mut h = [0u8; 8];
    r.read_exact(&mut h).await?;
    let len = u32::from_be_bytes([0, h[5], h[6], h[7]]) as usize;
    if len > MAX_FRAME {
        bail!("SPDY frame of {len} bytes");
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(if h[0] & 0x80 != 0 {
        let version = u16::from_be_bytes([h[0] & 0x7f, h[1]]);
        if version != 3 {
            bail!("SPDY version {version}, not 3");
        }
        Frame::Control {
            kind: u16::from_be_bytes([h[2], h[3]]),
            flags: h[4],
            data: payload,
        }
    } else {
        Frame::Data {
            stream: u32::from_be_bytes([h[0], h[1], h[2], h[3]]) & 0x7fff_ffff,
            flags: h[4],
            data: payload,
        }
    })
}

/// An empty name/value block, compressed in the connection's zlib stream.
fn empty_headers(z: &mut Compress) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    let _ = z.compress_vec(&[0, 0, 0, 0], &mut out, FlushCompress::Sync);
    out
}

/// Serve one upgraded connection.
pub async fn serve(
    mut conn: TcpStream,
    req: Upgrade,
    pending: Option<Pending>,
    rt: crate::pod::Runtime,
) -> Result<()> {
    let Some(pending) = pending else {
        refuse(
            &mut conn,
            "404 Not Found",
            &format!("unknown or expired stream {}", req.path),
        )
        .await;
        return Ok(());
    };
    let wanted: &[&str] = match pending {
        Pending::PortForward { .. } => &["portforward.k8s.io"],
        _ => &[
            "v4.channel.k8s.io",
            "v3.channel.k8s.io",
            "v2.channel.k8s.io",
            "channel.k8s.io",
        ],
    };
    let Some(protocol) = wanted
        .iter()
        .find(|w| req.protocols.iter().any(|p| p == *w))
    else {
        let msg = format!("no supported stream protocol among {:?}", req.protocols);
        refuse(&mut conn, "403 Forbidden", &msg).await;
        return Ok(());
    };
    conn.write_all(
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {protocol}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await?;
    let resize = !matches!(*protocol, "v2.channel.k8s.io" | "channel.k8s.io");
    let mut expected: VecDeque<Role> = VecDeque::new();
    let (stdin, stdout, stderr, tty) = match &pending {
        Pending::Exec(r) => (r.stdin, r.stdout, r.stderr, r.tty),
        Pending::Attach(r) => (r.stdin, r.stdout, r.stderr, r.tty),
        Pending::PortForward { .. } => (false, false, false, false),
    };
    if !matches!(pending, Pending::PortForward { .. }) {
        expected.push_back(Role::Error);
        if stdin {
            expected.push_back(Role::Stdin);
        }
        if stdout {
            expected.push_back(Role::Stdout);
        }
        if stderr && !tty {
            expected.push_back(Role::Stderr);
        }
        if tty && resize {
            expected.push_back(Role::Resize);
        }
    }

    let (mut rd, mut wr) = conn.into_split();
    let (ftx, mut frx) = mpsc::channel::<Vec<u8>>(128);
    let writer = tokio::spawn(async move {
        while let Some(f) = frx.recv().await {
            if wr.write_all(&f).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    });
    let (rtx, mut rrx) = mpsc::channel::<Frame>(64);
    let reader = tokio::spawn(async move {
        while let Ok(f) = read_frame(&mut rd).await {
            if rtx.send(f).await.is_err() {
                return;
            }
        }
    });

    let mut z = Compress::new(Compression::fast(), true);
    let mut roles: HashMap<u32, Role> = HashMap::new();
    let mut ids: HashMap<Role, u32> = HashMap::new();
    // exec/attach: channel frames to the session, and its output
    let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(64);
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
    let mut session = Some((in_rx, out_tx, pending.clone()));
    let mut resize_buf: Vec<u8> = Vec::new();
    // port-forward: the TCP connection of each data stream
    let mut pf_conns: HashMap<u32, mpsc::Sender<Option<Vec<u8>>>> = HashMap::new();
    let mut pf_next = 0usize;
    let start_by = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut started = false;

    loop {
        tokio::select! {
            f = rrx.recv() => {
                let Some(f) = f else { break };
                match f {
                    Frame::Control { kind: SYN_STREAM, data: d, .. } if d.len() >= 10 => {
                        let id = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) & 0x7fff_ffff;
                        let role = match &pending {
                            Pending::PortForward { .. } => {
                                let n = pf_next / 2;
                                pf_next += 1;
                                Some(if pf_next % 2 == 1 { Role::PortError(n) } else { Role::PortData(n) })
                            }
                            _ => expected.pop_front(),
                        };
                        let Some(role) = role else {
                            // a stream the request did not ask for: refused
                            let mut b = id.to_be_bytes().to_vec();
                            b.extend_from_slice(&3u32.to_be_bytes());
                            let _ = ftx.send(control(RST_STREAM, 0, &b)).await;
                            continue;
                        };
                        roles.insert(id, role);
                        ids.insert(role, id);
                        let mut reply = id.to_be_bytes().to_vec();
                        reply.extend(empty_headers(&mut z));
                        let _ = ftx.send(control(SYN_REPLY, 0, &reply)).await;
                        if let (Role::PortData(n), Pending::PortForward { pod, ports }) = (role, &pending) {
                            let err_id = ids.get(&Role::PortError(n)).copied();
                            pf_conns.insert(id, port_connection(&rt, pod, ports, id, err_id, ftx.clone()));
                        }
                        if expected.is_empty() && !started && !matches!(pending, Pending::PortForward { .. }) {
                            started = true;
                            let (in_rx, out_tx, p) = session.take().expect("one session");
                            let rt = rt.clone();
                            tokio::spawn(async move {
                                match p {
                                    Pending::Exec(r) => run_exec(out_tx, in_rx, r, rt).await,
                                    Pending::Attach(r) => run_attach(out_tx, in_rx, r, rt).await,
                                    Pending::PortForward { .. } => {}
                                }
                            });
                        }
                    }
                    Frame::Control { kind: PING, flags, data: d } => {
                        let _ = ftx.send(control(PING, flags, &d)).await;
                    }
                    Frame::Control { kind: GOAWAY, .. } => break,
                    Frame::Control { kind: RST_STREAM, data: d, .. } if d.len() >= 4 => {
                        let id = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) & 0x7fff_ffff;
                        if roles.get(&id) == Some(&Role::Stdin) {
                            let _ = in_tx.send(vec![255, 0]).await;
                        }
                    }
                    Frame::Control { .. } => {} // SETTINGS, WINDOW_UPDATE, HEADERS
                    Frame::Data { stream, flags, data: d } => match roles.get(&stream) {
                        Some(Role::Stdin) => {
                            if !d.is_empty() {
                                let mut m = vec![0u8];
                                m.extend_from_slice(&d);
                                let _ = in_tx.send(m).await;
                            }
                            if flags & FLAG_FIN != 0 {
                                let _ = in_tx.send(vec![255, 0]).await;
                            }
                        }
                        Some(Role::Resize) => {
                            resize_buf.extend_from_slice(&d);
                            let mut it = serde_json::Deserializer::from_slice(&resize_buf)
                                .into_iter::<serde_json::Value>();
                            let mut used = 0;
                            while let Some(Ok(v)) = it.next() {
                                used = it.byte_offset();
                                let mut m = vec![4u8];
                                m.extend(v.to_string().into_bytes());
                                let _ = in_tx.send(m).await;
                            }
                            resize_buf.drain(..used);
                        }
                        Some(Role::PortData(_)) => {
                            if let Some(tx) = pf_conns.get(&stream) {
                                if !d.is_empty() {
                                    let _ = tx.send(Some(d)).await;
                                }
                                if flags & FLAG_FIN != 0 {
                                    let _ = tx.send(None).await;
                                }
                            }
                        }
                        _ => {}
                    },
                }
            }
            m = out_rx.recv(), if started => {
                let Some(Message::Binary(b)) = m else { break };
                let Some((&ch, payload)) = b.split_first() else { continue };
                let role = match ch { 1 => Role::Stdout, 2 => Role::Stderr, 3 => Role::Error, _ => continue };
                // with a terminal, everything is output
                let role = if role == Role::Stderr && !ids.contains_key(&Role::Stderr) { Role::Stdout } else { role };
                if let Some(&id) = ids.get(&role) {
                    let _ = ftx.send(data(id, 0, payload)).await;
                }
                if role == Role::Error {
                    // the status is the session's last word: close every stream, then the connection
                    for r in [Role::Stdout, Role::Stderr, Role::Error] {
                        if let Some(&id) = ids.get(&r) {
                            let _ = ftx.send(data(id, FLAG_FIN, &[])).await;
                        }
                    }
                    break;
                }
            }
            _ = tokio::time::sleep_until(start_by), if !started && !matches!(pending, Pending::PortForward { .. }) => {
                if let Some(&id) = ids.get(&Role::Error) {
                    let _ = ftx.send(data(id, FLAG_FIN, &exit_status(None, Some("the client did not open every stream it asked for".into()))[1..])).await;
                }
                break;
            }
        }
    }
    drop(in_tx);
    drop(pf_conns);
    drop(ftx);
    reader.abort();
    let _ = writer.await;
    Ok(())
}

/// Answer an upgrade request with an HTTP error and a one-line reason.
async fn refuse(conn: &mut TcpStream, status: &str, reason: &str) {
    let body = format!("{reason}\n");
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all((head + &body).as_bytes()).await;
}

/// Connect a port-forward data stream to the pod's port; returns where its client data goes.
fn port_connection(
    rt: &crate::pod::Runtime,
    pod: &str,
    ports: &[i32],
    stream: u32,
    err_stream: Option<u32>,
    ftx: mpsc::Sender<Vec<u8>>,
) -> mpsc::Sender<Option<Vec<u8>>> {
    let (tx, mut rx) = mpsc::channel::<Option<Vec<u8>>>(64);
    let (rt, pod, ports) = (rt.clone(), pod.to_string(), ports.to_vec());
    tokio::spawn(async move {
        let fail = |msg: String| {
            let ftx = ftx.clone();
            async move {
                if let Some(e) = err_stream {
                    let _ = ftx.send(data(e, FLAG_FIN, msg.as_bytes())).await;
                }
                let _ = ftx.send(data(stream, FLAG_FIN, &[])).await;
            }
        };
        // which port a stream is for travels in its (undecoded) headers: one port per session
        let [port] = ports[..] else {
            return fail(format!(
                "berth forwards one port per SPDY session (asked for {ports:?}); use one session per port"
            ))
            .await;
        };
        let conn = tokio::task::spawn_blocking(move || rt.connect_in_pod(&pod, port as u16)).await;
        let c = match conn {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return fail(e.to_string()).await,
            Err(e) => return fail(e.to_string()).await,
        };
        let Ok(c) = c
            .set_nonblocking(true)
            .and_then(|_| tokio::net::TcpStream::from_std(c))
        else {
            return fail("port-forward socket".into()).await;
        };
        let (mut r, mut w) = c.into_split();
        let up = async move {
            while let Some(m) = rx.recv().await {
                match m {
                    Some(d) => {
                        if w.write_all(&d).await.is_err() {
                            return;
                        }
                    }
                    None => {
                        let _ = w.shutdown().await;
                        return;
                    }
                }
            }
        };
        let down = async {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if ftx.send(data(stream, 0, &buf[..n])).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = ftx.send(data(stream, FLAG_FIN, &[])).await;
            if let Some(e) = err_stream {
                let _ = ftx.send(data(e, FLAG_FIN, &[])).await;
            }
        };
        tokio::join!(up, down);
    });
    tx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_headers() {
        assert_eq!(
            control(PING, 0, &[0, 0, 0, 1]),
            vec![0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]
        );
        assert_eq!(data(5, FLAG_FIN, b"x"), vec![0, 0, 0, 5, 1, 0, 0, 1, b'x']);
        // the reply headers inflate (as the client's zlib reader does) to an empty block
        let mut z = Compress::new(Compression::fast(), true);
        let a = empty_headers(&mut z);
        let b = empty_headers(&mut z);
        let mut d = flate2::Decompress::new(true);
        let mut out = Vec::with_capacity(16);
        d.decompress_vec(&a, &mut out, flate2::FlushDecompress::Sync)
            .unwrap();
        assert_eq!(out, vec![0, 0, 0, 0]);
        out.clear();
        d.decompress_vec(&b, &mut out, flate2::FlushDecompress::Sync)
            .unwrap();
        assert_eq!(out, vec![0, 0, 0, 0]);
    }
}
