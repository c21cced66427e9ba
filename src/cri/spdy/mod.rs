//! SPDY/3.1, the streaming transport kubelet and crictl use by default: the client upgrades
//! an HTTP/1.1 request (`Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version: v4.channel.k8s.io`)
//! and opens one SPDY stream per channel.
//!
//! Each stream says what it carries in its header block ([`frame::HeaderCodec`]: zlib with
//! SPDY's dictionary): `streamtype` error, stdin, stdout, stderr or resize for exec and attach;
//! for a port-forward, `streamtype` error or data, the `port`, and a `requestid` that pairs
//! the two streams of one forwarded connection — one session carries any number of ports and
//! connections, as kubectl opens them. Exec and attach frames are bridged to the same
//! sessions as the WebSocket transport's (see [`super::stream`]); port-forward connections
//! are made by [`portforward`].

mod frame;
mod portforward;

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use frame::{
    FLAG_FIN, Frame, GOAWAY, HEADERS, PING, REFUSED_STREAM, RST_STREAM, SYN_REPLY, SYN_STREAM,
    control, data,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::stream::{Pending, exit_status, run_attach, run_exec};

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

/// What a client stream carries in an exec or attach session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Role {
    Error,
    Stdin,
    Stdout,
    Stderr,
    Resize,
}

impl Role {
    fn from_header(t: &str) -> Option<Role> {
        Some(match t {
            "error" => Role::Error,
            "stdin" => Role::Stdin,
            "stdout" => Role::Stdout,
            "stderr" => Role::Stderr,
            "resize" => Role::Resize,
            _ => return None,
        })
    }
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
    let (rtx, rrx) = mpsc::channel::<Frame>(64);
    let reader = tokio::spawn(async move {
        while let Ok(f) = frame::read_frame(&mut rd).await {
            if rtx.send(f).await.is_err() {
                return;
            }
        }
    });
    let r = match pending {
        Pending::PortForward { pod, .. } => portforward::serve(rrx, ftx.clone(), pod, rt).await,
        p => channels(rrx, ftx.clone(), p, protocol, rt).await,
    };
    drop(ftx);
    reader.abort();
    let _ = writer.await;
    r
}

/// The stream's ID and its decoded headers, answered with a SYN_REPLY.
async fn accept_stream(
    d: &[u8],
    codec: &mut frame::HeaderCodec,
    ftx: &mpsc::Sender<Vec<u8>>,
) -> Result<(u32, Vec<(String, String)>)> {
    if d.len() < 10 {
        bail!("a SYN_STREAM of {} bytes", d.len());
    }
    let id = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) & 0x7fff_ffff;
    let headers = codec.decode(&d[10..])?;
    let mut reply = id.to_be_bytes().to_vec();
    reply.extend(codec.encode(&[]));
    let _ = ftx.send(control(SYN_REPLY, 0, &reply)).await;
    Ok((id, headers))
}

/// An exec or attach session: the streams the request asked for, each named by its
/// `streamtype` header, bridged to the channel-frame session (see [`super::stream`]).
async fn channels(
    mut rrx: mpsc::Receiver<Frame>,
    ftx: mpsc::Sender<Vec<u8>>,
    pending: Pending,
    protocol: &str,
    rt: crate::pod::Runtime,
) -> Result<()> {
    let resize = !matches!(protocol, "v2.channel.k8s.io" | "channel.k8s.io");
    let (stdin, stdout, stderr, tty) = match &pending {
        Pending::Exec(r) => (r.stdin, r.stdout, r.stderr, r.tty),
        Pending::Attach(r) => (r.stdin, r.stdout, r.stderr, r.tty),
        Pending::PortForward { .. } => bail!("a port-forward is not a channel session"),
    };
    // the streams the session waits for before it starts
    let mut expected: Vec<Role> = vec![Role::Error];
    for (on, role) in [
        (stdin, Role::Stdin),
        (stdout, Role::Stdout),
        (stderr && !tty, Role::Stderr),
        (tty && resize, Role::Resize),
    ] {
        if on {
            expected.push(role);
        }
    }
    let mut codec = frame::HeaderCodec::default();
    let mut roles: HashMap<u32, Role> = HashMap::new();
    let mut ids: HashMap<Role, u32> = HashMap::new();
    let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(64);
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
    let mut session = Some((in_rx, out_tx, pending));
    let mut resize_buf: Vec<u8> = Vec::new();
    let start_by = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut started = false;
    loop {
        tokio::select! {
            f = rrx.recv() => {
                let Some(f) = f else { break };
                match f {
                    Frame::Control { kind: SYN_STREAM, data: d, .. } => {
                        let (id, headers) = accept_stream(&d, &mut codec, &ftx).await?;
                        let role = frame::header(&headers, "streamtype").and_then(Role::from_header);
                        let Some(role) = role.filter(|r| expected.contains(r) && !ids.contains_key(r)) else {
                            // a stream the request did not ask for: refused
                            let _ = ftx.send(frame::reset(id, REFUSED_STREAM)).await;
                            continue;
                        };
                        roles.insert(id, role);
                        ids.insert(role, id);
                        if !started && expected.iter().all(|r| ids.contains_key(r)) {
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
                    Frame::Control { kind: HEADERS, data: d, .. } if d.len() >= 4 => {
                        // kept in step: the zlib stream spans every header block
                        codec.decode(&d[4..])?;
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
                    Frame::Control { .. } => {} // SETTINGS, WINDOW_UPDATE
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
            _ = tokio::time::sleep_until(start_by), if !started => {
                if let Some(&id) = ids.get(&Role::Error) {
                    let _ = ftx.send(data(id, FLAG_FIN, &exit_status(None, Some("the client did not open every stream it asked for".into()))[1..])).await;
                }
                break;
            }
        }
    }
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
