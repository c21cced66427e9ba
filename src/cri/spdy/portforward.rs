//! Port forwarding over SPDY, as kubelet serves it to kubectl: each forwarded connection is
//! a pair of streams, `streamtype` error and data, that share a `requestid` and name the pod's
//! `port`. Once both are open, berth connects to the port inside the pod's network namespace
//! (the host's for hostNetwork pods) and copies bytes both ways; a failure is written to the
//! pair's error stream. One session carries any number of ports and connections at once.

use std::collections::HashMap;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::frame::{
    self, FLAG_FIN, Frame, GOAWAY, HEADERS, HeaderCodec, PING, REFUSED_STREAM, RST_STREAM,
    SYN_STREAM, control, data,
};

/// The streams of one forwarded connection, as they arrive.
#[derive(Debug, Default)]
struct Pair {
    error: Option<u32>,
    data: Option<u32>,
    /// The `port` header of the data stream (as sent; checked when the pair is complete).
    port: String,
}

/// Serve a port-forward session until the client goes away.
pub async fn serve(
    mut rrx: mpsc::Receiver<Frame>,
    ftx: mpsc::Sender<Vec<u8>>,
    pod: String,
    rt: crate::pod::Runtime,
) -> Result<()> {
    let mut codec = HeaderCodec::default();
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    // data stream → what the client sends on it (None: its end)
    let mut conns: HashMap<u32, mpsc::Sender<Option<Vec<u8>>>> = HashMap::new();
    while let Some(f) = rrx.recv().await {
        match f {
            Frame::Control {
                kind: SYN_STREAM,
                data: d,
                ..
            } => {
                let (id, headers) = super::accept_stream(&d, &mut codec, &ftx).await?;
                let kind = frame::header(&headers, "streamtype").unwrap_or("");
                let request = frame::header(&headers, "requestid")
                    .unwrap_or("")
                    .to_string();
                let pair = pairs.entry(request.clone()).or_default();
                match kind {
                    "error" if pair.error.is_none() => pair.error = Some(id),
                    "data" if pair.data.is_none() => {
                        pair.data = Some(id);
                        pair.port = frame::header(&headers, "port").unwrap_or("").to_string();
                    }
                    _ => {
                        let _ = ftx.send(frame::reset(id, REFUSED_STREAM)).await;
                        continue;
                    }
                }
                if let Pair {
                    error: Some(e),
                    data: Some(dstream),
                    port,
                } = pair
                {
                    let (e, dstream, port) = (*e, *dstream, std::mem::take(port));
                    pairs.remove(&request);
                    let tx = connect(&rt, &pod, &port, dstream, e, ftx.clone());
                    conns.insert(dstream, tx);
                }
            }
            Frame::Control {
                kind: HEADERS,
                data: d,
                ..
            } if d.len() >= 4 => {
                codec.decode(&d[4..])?;
            }
            Frame::Control {
                kind: PING,
                flags,
                data: d,
            } => {
                let _ = ftx.send(control(PING, flags, &d)).await;
            }
            Frame::Control { kind: GOAWAY, .. } => break,
            Frame::Control {
                kind: RST_STREAM,
                data: d,
                ..
            } if d.len() >= 4 => {
                // the client gave up on a connection: its socket is closed
                let id = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) & 0x7fff_ffff;
                conns.remove(&id);
            }
            Frame::Control { .. } => {} // SETTINGS, WINDOW_UPDATE
            Frame::Data {
                stream,
                flags,
                data: d,
            } => {
                if let Some(tx) = conns.get(&stream) {
                    if !d.is_empty() {
                        let _ = tx.send(Some(d)).await;
                    }
                    if flags & FLAG_FIN != 0 {
                        let _ = tx.send(None).await;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Connect the data stream `stream` to `port` in the pod; returns where its client data goes.
fn connect(
    rt: &crate::pod::Runtime,
    pod: &str,
    port: &str,
    stream: u32,
    err_stream: u32,
    ftx: mpsc::Sender<Vec<u8>>,
) -> mpsc::Sender<Option<Vec<u8>>> {
    let (tx, mut rx) = mpsc::channel::<Option<Vec<u8>>>(64);
    let (rt, pod, port) = (rt.clone(), pod.to_string(), port.to_string());
    tokio::spawn(async move {
        let fail = |msg: String| {
            let ftx = ftx.clone();
            async move {
                let _ = ftx.send(data(err_stream, FLAG_FIN, msg.as_bytes())).await;
                let _ = ftx.send(data(stream, FLAG_FIN, &[])).await;
            }
        };
        let port = match port.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return fail(format!("port-forward: {port:?} is not a port")).await,
        };
        let conn = tokio::task::spawn_blocking(move || rt.connect_in_pod(&pod, port)).await;
        let c = match conn {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return fail(format!("port-forward to port {port}: {e}")).await,
            Err(e) => return fail(format!("port-forward to port {port}: {e}")).await,
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
            let _ = ftx.send(data(err_stream, FLAG_FIN, &[])).await;
        };
        tokio::join!(up, down);
    });
    tx
}
