//! The streaming server behind Exec, Attach and PortForward: the RPC stores the request under
//! a one-time token (valid one minute, as kubelet's) and answers with this server's URL; the
//! client connects there with a WebSocket and speaks Kubernetes' channel protocol
//! (`v5.channel.k8s.io`, `v4.channel.k8s.io`, `channel.k8s.io`): every binary message starts
//! with a channel byte — 0 stdin, 1 stdout, 2 stderr, 3 error (a final metav1.Status JSON),
//! 4 terminal resize (`{"Width":W,"Height":H}`), and on v5 `[255, 0]` closes stdin. Port
//! forwarding takes its ports from the `port` query parameters and uses channel 2i for the
//! data of the i-th port and 2i+1 for its errors; each starts with the port number (2 bytes,
//! little endian), as kubelet's server sends it.
//!
//! kubelet's and crictl's default transport, SPDY/3.1, is served too (see [`super::spdy`]).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt};
use k8s_cri::v1 as cri;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

use crate::pod::monitor::protocol::attach::{Decoder, Input, Output};

const TOKEN_TTL: Duration = Duration::from_secs(60);
const PROTOCOLS: [&str; 4] = [
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "channel.k8s.io",
    "portforward.k8s.io",
];
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

#[derive(Debug, Clone)]
pub(super) enum Pending {
    Exec(cri::ExecRequest),
    Attach(cri::AttachRequest),
    PortForward { pod: String, ports: Vec<i32> },
}

type Tokens = Arc<Mutex<HashMap<String, (Instant, Pending)>>>;
/// What the handshake found: the stored request and the `port` query parameters.
type Found = Arc<Mutex<Option<(Pending, Vec<u16>)>>>;

/// The streaming server.
pub struct Server {
    addr: SocketAddr,
    tokens: Tokens,
}

impl Server {
    /// Listen on `addr` (`IP:PORT`; port 0 picks a free one) and serve in the background.
    pub async fn start(addr: &str, rt: crate::pod::Runtime) -> Result<Server> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("listen on {addr}"))?;
        let addr = listener.local_addr().context("streaming address")?;
        let tokens: Tokens = Arc::default();
        let t = tokens.clone();
        tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let (t, rt) = (t.clone(), rt.clone());
                tokio::spawn(async move {
                    if let Err(e) = session(conn, t, rt).await {
                        super::log(super::Level::Warn, &format!("stream: {e:#}"));
                    }
                });
            }
        });
        Ok(Server { addr, tokens })
    }

    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    fn url(&self, kind: &str, p: Pending) -> String {
        let token = crate::pod::store::new_id();
        let mut t = self.tokens.lock().expect("tokens lock");
        t.retain(|_, (at, _)| at.elapsed() < TOKEN_TTL);
        t.insert(token.clone(), (Instant::now(), p));
        format!("http://{}/{kind}/{token}", self.addr)
    }

    pub fn exec_url(&self, r: cri::ExecRequest) -> String {
        self.url("exec", Pending::Exec(r))
    }

    pub fn attach_url(&self, r: cri::AttachRequest) -> String {
        self.url("attach", Pending::Attach(r))
    }

    pub fn port_forward_url(&self, pod: String, ports: Vec<i32>) -> String {
        self.url("portforward", Pending::PortForward { pod, ports })
    }
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// One client: the handshake takes the token from the path, then the session runs.
async fn session(mut conn: TcpStream, tokens: Tokens, rt: crate::pod::Runtime) -> Result<()> {
    // SPDY clients (kubelet's and crictl's default) upgrade to SPDY/3.1; WebSocket otherwise
    if let Some(req) = super::spdy::peek_upgrade(&mut conn).await? {
        let pending = take(&tokens, &req.path);
        return super::spdy::serve(conn, req, pending, rt).await;
    }
    let found: Found = Arc::default();
    let f = found.clone();
    // tungstenite's callback type fixes the error type
    #[allow(clippy::result_large_err)]
    let callback = move |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let path = req.uri().path();
        let Some(pending) = take(&tokens, path) else {
            let mut e = ErrorResponse::new(Some(format!("unknown or expired stream {path}")));
            *e.status_mut() = http::StatusCode::NOT_FOUND;
            return Err(e);
        };
        let offered: Vec<String> = req
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(',').map(|s| s.trim().to_string()))
            .collect();
        if let Some(p) = PROTOCOLS.iter().find(|p| offered.iter().any(|o| o == *p))
            && let Ok(v) = http::HeaderValue::from_str(p)
        {
            resp.headers_mut().insert("sec-websocket-protocol", v);
        }
        // kubelet's `port` parameters (repeated), or `ports=P1,P2`
        let ports: Vec<u16> = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.strip_prefix("port=").or(kv.strip_prefix("ports=")))
            .flat_map(|v| v.split(',').map(str::to_string).collect::<Vec<_>>())
            .filter_map(|p| p.trim().parse().ok())
            .collect();
        *f.lock().expect("found lock") = Some((pending, ports));
        Ok(resp)
    };
    let ws = tokio_tungstenite::accept_hdr_async(conn, callback)
        .await
        .context("websocket handshake")?;
    let (pending, query_ports) = found
        .lock()
        .expect("found lock")
        .take()
        .context("no stream request")?;
    match pending {
        Pending::Exec(r) => exec(ws, r, rt).await,
        Pending::Attach(r) => attach(ws, r, rt).await,
        Pending::PortForward { pod, ports } => {
            let ports = if query_ports.is_empty() {
                ports.iter().map(|p| *p as u16).collect()
            } else {
                query_ports
            };
            port_forward(ws, pod, ports, rt).await
        }
    }
}

/// The request stored under the token at the end of `path` (each token works once).
fn take(tokens: &Tokens, path: &str) -> Option<Pending> {
    let token = path.rsplit('/').next().unwrap_or("");
    tokens
        .lock()
        .expect("tokens lock")
        .remove(token)
        .filter(|(at, _)| at.elapsed() < TOKEN_TTL)
        .map(|(_, p)| p)
}

/// metav1.Status for the error channel.
pub(super) fn exit_status(code: Option<i32>, err: Option<String>) -> Vec<u8> {
    let v = match (code, err) {
        (_, Some(e)) => {
            serde_json::json!({"metadata": {}, "status": "Failure", "message": e, "reason": "InternalError"})
        }
        (Some(0), None) => serde_json::json!({"metadata": {}, "status": "Success"}),
        (c, None) => {
            let c = c.unwrap_or(-1);
            serde_json::json!({"metadata": {}, "status": "Failure",
                "message": format!("command terminated with non-zero exit code: {c}"),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": c.to_string()}]}})
        }
    };
    let mut out = vec![ERROR];
    out.extend(v.to_string().into_bytes());
    out
}

pub(super) fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::binary(v)
}

/// Pump `out` to the socket until every sender is gone; hand back what the client sends.
fn split(
    ws: Ws,
) -> (
    mpsc::Sender<Message>,
    mpsc::Receiver<Vec<u8>>,
    tokio::task::JoinHandle<()>,
) {
    let (mut sink, mut source) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
    let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if sink.send(m).await.is_err() {
                return;
            }
        }
        let _ = sink.send(Message::Close(None)).await;
    });
    tokio::spawn(async move {
        while let Some(Ok(m)) = source.next().await {
            match m {
                Message::Binary(b) if in_tx.send(b.to_vec()).await.is_err() => return,
                Message::Close(_) => return,
                _ => {}
            }
        }
    });
    (out_tx, in_rx, writer)
}

async fn exec(ws: Ws, r: cri::ExecRequest, rt: crate::pod::Runtime) -> Result<()> {
    let (out, input, writer) = split(ws);
    run_exec(out, input, r, rt).await;
    let _ = writer.await;
    Ok(())
}

/// Run an exec session over channel frames (`[channel, data...]`), whatever carries them:
/// the process's output goes to `out`, the client's input comes from `input`; the last frame
/// sent is the error channel's status.
pub(super) async fn run_exec(
    out: mpsc::Sender<Message>,
    mut input: mpsc::Receiver<Vec<u8>>,
    r: cri::ExecRequest,
    rt: crate::pod::Runtime,
) {
    let cmd = match rt.exec_command(&r.container_id, &r.cmd, r.tty) {
        Ok(c) => c,
        Err(e) => {
            let _ = out
                .send(Message::binary(exit_status(None, Some(e.to_string()))))
                .await;
            return;
        }
    };
    let code = if r.tty {
        exec_tty(cmd, &out, &mut input, r.stdin).await
    } else {
        exec_pipes(cmd, &out, &mut input, &r).await
    };
    let msg = match code {
        Ok(c) => exit_status(Some(c), None),
        Err(e) => exit_status(None, Some(format!("{e:#}"))),
    };
    let _ = out.send(Message::binary(msg)).await;
}

async fn exec_pipes(
    cmd: std::process::Command,
    out: &mpsc::Sender<Message>,
    input: &mut mpsc::Receiver<Vec<u8>>,
    r: &cri::ExecRequest,
) -> Result<i32> {
    use std::process::Stdio;
    let mut cmd = tokio::process::Command::from(cmd);
    let pipe = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
    cmd.stdin(pipe(r.stdin))
        .stdout(pipe(r.stdout))
        .stderr(pipe(r.stderr));
    let mut child = cmd.spawn().context("run berth exec")?;
    let pump = |mut from: Box<dyn tokio::io::AsyncRead + Unpin + Send>, ch: u8| {
        let out = out.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match from.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if out.send(frame(ch, &buf[..n])).await.is_err() {
                            return;
                        }
                    }
                }
            }
        })
    };
    let mut pumps = Vec::new();
    if let Some(o) = child.stdout.take() {
        pumps.push(pump(Box::new(o), STDOUT));
    }
    if let Some(e) = child.stderr.take() {
        pumps.push(pump(Box::new(e), STDERR));
    }
    let mut stdin = child.stdin.take();
    let status = loop {
        tokio::select! {
            st = child.wait() => break st.context("wait for berth exec")?,
            m = input.recv() => match m {
                Some(m) if m.first() == Some(&STDIN) => {
                    if let Some(w) = stdin.as_mut()
                        && w.write_all(&m[1..]).await.is_err()
                    {
                        stdin = None;
                    }
                }
                Some(m) if m.first() == Some(&CLOSE) && m.get(1) == Some(&STDIN) => stdin = None,
                Some(_) => {}
                // the client went away: the process gets EOF on stdin and goes on
                None => stdin = None,
            },
        }
    };
    for p in pumps {
        let _ = p.await;
    }
    Ok(status
        .code()
        .unwrap_or(128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)))
}

async fn exec_tty(
    mut cmd: std::process::Command,
    out: &mpsc::Sender<Message>,
    input: &mut mpsc::Receiver<Vec<u8>>,
    want_stdin: bool,
) -> Result<i32> {
    let pty = nix::pty::openpty(None, None).context("open a pty")?;
    let slave = std::fs::File::from(pty.slave);
    cmd.stdin(slave.try_clone()?)
        .stdout(slave.try_clone()?)
        .stderr(slave);
    crate::linux::sys::session_with_terminal(&mut cmd);
    let mut child = tokio::process::Command::from(cmd)
        .spawn()
        .context("run berth exec -t")?;
    let master = std::fs::File::from(pty.master);
    let mut reader = master.try_clone()?;
    let out2 = out.clone();
    // the master is read in a thread: it ends with EIO once every slave fd is closed
    let read_task = tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if out2.blocking_send(frame(STDOUT, &buf[..n])).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut writer = Some(master);
    let status = loop {
        tokio::select! {
            st = child.wait() => break st.context("wait for berth exec")?,
            m = input.recv() => match m {
                Some(m) if m.first() == Some(&STDIN) && want_stdin => {
                    if let Some(w) = writer.as_mut() {
                        let _ = w.write_all(&m[1..]);
                    }
                }
                Some(m) if m.first() == Some(&RESIZE) => {
                    #[derive(serde::Deserialize)]
                    #[serde(rename_all = "PascalCase")]
                    struct Size { width: u16, height: u16 }
                    if let (Some(w), Ok(s)) = (writer.as_ref(), serde_json::from_slice::<Size>(&m[1..])) {
                        use std::os::fd::AsFd;
                        let _ = crate::linux::sys::set_window_size(w.as_fd(), s.height, s.width);
                    }
                }
                Some(m) if m.first() == Some(&CLOSE) && m.get(1) == Some(&STDIN) => {
                    // end of input on a terminal: ^D
                    if let Some(w) = writer.as_mut() {
                        let _ = w.write_all(&[4]);
                    }
                }
                Some(_) => {}
                None => {}
            },
        }
    };
    drop(writer);
    let _ = tokio::time::timeout(Duration::from_secs(2), read_task).await;
    Ok(status
        .code()
        .unwrap_or(128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)))
}

/// Attach over a WebSocket.
async fn attach(ws: Ws, r: cri::AttachRequest, rt: crate::pod::Runtime) -> Result<()> {
    let (out, input, writer) = split(ws);
    run_attach(out, input, r, rt).await;
    let _ = writer.await;
    Ok(())
}

/// An attach session over channel frames (see [`run_exec`]): the container's streams as its
/// pod monitor serves them (output from now on; stdin and terminal size when it has them).
pub(super) async fn run_attach(
    out: mpsc::Sender<Message>,
    mut input: mpsc::Receiver<Vec<u8>>,
    r: cri::AttachRequest,
    rt: crate::pod::Runtime,
) {
    let id = r.container_id.clone();
    let conn = tokio::task::spawn_blocking(move || rt.attach(&id))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let conn = match conn {
        Ok(c) => c,
        Err(e) => {
            let _ = out.send(Message::binary(exit_status(None, Some(e)))).await;
            return;
        }
    };
    let Ok(conn) = conn
        .set_nonblocking(true)
        .and_then(|_| tokio::net::UnixStream::from_std(conn))
    else {
        let _ = out
            .send(Message::binary(exit_status(
                None,
                Some("attach socket".into()),
            )))
            .await;
        return;
    };
    let (mut rd, mut wr) = conn.into_split();
    let o = out.clone();
    let (want_out, want_err) = (r.stdout, r.stderr);
    let from_container = async move {
        let mut frames = Decoder::default();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => frames.feed(&buf[..n]),
            }
            while let Some(f) = frames.next_output() {
                let m = match f {
                    Output::Stdout(d) if want_out => frame(STDOUT, &d),
                    Output::Stderr(d) if want_err => frame(STDERR, &d),
                    _ => continue,
                };
                if o.send(m).await.is_err() {
                    return;
                }
            }
        }
    };
    let stdin = r.stdin;
    let to_container = async move {
        while let Some(m) = input.recv().await {
            let Some((&ch, data)) = m.split_first() else {
                continue;
            };
            let frame = match ch {
                STDIN if stdin => Input::Stdin(data.to_vec()),
                CLOSE if data.first() == Some(&STDIN) => Input::EndOfStdin,
                RESIZE => {
                    #[derive(serde::Deserialize)]
                    #[serde(rename_all = "PascalCase")]
                    struct Size {
                        width: u16,
                        height: u16,
                    }
                    let Ok(s) = serde_json::from_slice::<Size>(data) else {
                        continue;
                    };
                    Input::Resize {
                        rows: s.height,
                        cols: s.width,
                    }
                }
                _ => continue,
            };
            if wr.write_all(&frame.encode()).await.is_err() {
                break;
            }
        }
    };
    // the session ends when the container exits or the client leaves
    tokio::select! {
        _ = from_container => {}
        _ = to_container => {}
    }
    let _ = out.send(Message::binary(exit_status(Some(0), None))).await;
}

async fn port_forward(ws: Ws, pod: String, ports: Vec<u16>, rt: crate::pod::Runtime) -> Result<()> {
    let (out, mut input, writer) = split(ws);
    let mut conns: Vec<Option<tokio::net::tcp::OwnedWriteHalf>> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let (data, errc) = ((2 * i) as u8, (2 * i + 1) as u8);
        let p = port.to_le_bytes();
        let _ = out.send(frame(data, &p)).await;
        let _ = out.send(frame(errc, &p)).await;
        let (rt2, pod2, port) = (rt.clone(), pod.clone(), *port);
        let conn = tokio::task::spawn_blocking(move || rt2.connect_in_pod(&pod2, port)).await;
        match conn {
            Ok(Ok(c)) => {
                c.set_nonblocking(true)?;
                let (mut rd, wr) = tokio::net::TcpStream::from_std(c)?.into_split();
                conns.push(Some(wr));
                let out = out.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        match rd.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if out.send(frame(data, &buf[..n])).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
            Ok(Err(e)) => {
                let _ = out.send(frame(errc, e.to_string().as_bytes())).await;
                conns.push(None);
            }
            Err(e) => {
                let _ = out.send(frame(errc, e.to_string().as_bytes())).await;
                conns.push(None);
            }
        }
    }
    drop(out);
    while let Some(m) = input.recv().await {
        let Some((&ch, data)) = m.split_first() else {
            continue;
        };
        if ch % 2 == 0
            && let Some(Some(w)) = conns.get_mut(usize::from(ch / 2))
            && w.write_all(data).await.is_err()
        {
            conns[usize::from(ch / 2)] = None;
        }
    }
    drop(conns);
    writer.abort();
    Ok(())
}
