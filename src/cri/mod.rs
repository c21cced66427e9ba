//! `berth serve`: the Kubernetes CRI v1 (`runtime.v1.RuntimeService` and
//! `runtime.v1.ImageService`) over gRPC on a unix socket, as a thin layer over
//! [`crate::pod::Runtime`].
//!
//! - The daemon holds no state of its own: pods, containers and what their monitors recorded
//!   are on disk, so a daemon killed at any point and started again lists everything as it was
//!   (and [`crate::pod::Runtime::recover`] rolls back creations it was killed in the middle of).
//! - Each RPC runs the library's blocking call on tokio's blocking pool: no lock is held across
//!   pulls, CNI or grace periods; names are reserved race-free by the library.
//! - Each connection passes through `authority`, so Go clients that send the socket path as
//!   `:authority` (crictl 1.26–1.29) are accepted.
//! - Exec, Attach and PortForward hand out URLs of `stream`'s HTTP server.

pub(crate) mod authority;
pub mod config;
mod convert;
mod events;
mod images;
mod observe;
mod runtime;
mod spdy;
pub(crate) mod stream;

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use k8s_cri::v1::image_service_server::ImageServiceServer;
use k8s_cri::v1::runtime_service_server::RuntimeServiceServer;
use tokio::net::UnixListener;

pub use config::Config;

/// What every service shares.
pub(crate) struct Shared {
    pub rt: crate::pod::Runtime,
    pub cfg: Config,
    pub events: events::Hub,
    pub stream: stream::Server,
}

/// Log levels of the config's `log_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

static LEVEL: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(3);

/// A line on stderr when `level` is within the configured log level.
pub(crate) fn log(level: Level, msg: &str) {
    if level as u8 <= LEVEL.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!(
            "berth serve: {}: {msg}",
            format!("{level:?}").to_lowercase()
        );
    }
}

/// Run the daemon until SIGTERM or SIGINT. `ready` is called once the socket accepts.
pub fn serve(cfg: Config, ready: impl FnOnce(&Path) + Send + 'static) -> Result<()> {
    let level = match cfg.log_level.as_str() {
        "error" => Level::Error,
        "warn" => Level::Warn,
        "debug" => Level::Debug,
        _ => Level::Info,
    };
    LEVEL.store(level as u8, std::sync::atomic::Ordering::Relaxed);
    let socket = cfg.socket_path()?;
    let rt = crate::pod::Runtime::new(cfg.options());
    for what in rt.recover() {
        log(
            Level::Warn,
            &format!("rolled back the unfinished creation of {what}"),
        );
    }
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(256)
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    tokio_rt.block_on(async move {
        let stream = stream::Server::start(&cfg.stream_address, rt.clone())
            .await
            .context("start the streaming server")?;
        let shared = Arc::new(Shared {
            events: events::Hub::start(rt.clone()),
            rt,
            cfg,
            stream,
        });
        if let Some(dir) = socket.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        match std::fs::remove_file(&socket) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("remove {}", socket.display())),
        }
        let listener = UnixListener::bind(&socket)
            .with_context(|| format!("listen on {}", socket.display()))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<tokio::io::DuplexStream>>(64);
        tokio::spawn(accept_loop(listener, tx));
        let incoming = tokio_stream::wrappers::ReceiverStream::new(rx);
        ready(&socket);
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        log(
            Level::Info,
            &format!(
                "serving CRI v1 on unix://{}, streaming on {}",
                socket.display(),
                shared.stream.address()
            ),
        );
        let slow = shared.cfg.slow_rpc()?;
        let r = tonic::transport::Server::builder()
            .layer(tower::layer::layer_fn(move |s| {
                observe::Observe::new(s, slow)
            }))
            .add_service(RuntimeServiceServer::new(runtime::Service(shared.clone())))
            .add_service(ImageServiceServer::new(images::Service(shared.clone())))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        let _ = std::fs::remove_file(&socket);
        r.context("serve gRPC")
    })
}

/// Accept connections; each gets a relay (see [`authority`]) in front of tonic.
async fn accept_loop(
    listener: UnixListener,
    tx: tokio::sync::mpsc::Sender<std::io::Result<tokio::io::DuplexStream>>,
) {
    loop {
        let conn = match listener.accept().await {
            Ok((c, _)) => c,
            Err(e) => {
                log(Level::Error, &format!("accept: {e}"));
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let (server_side, relay_side) = tokio::io::duplex(256 * 1024);
        if tx.send(Ok(server_side)).await.is_err() {
            return;
        }
        tokio::spawn(async move {
            let (client_r, mut client_w) = conn.into_split();
            let (mut relay_r, relay_w) = tokio::io::split(relay_side);
            let up = authority::relay_requests(client_r, relay_w);
            let down = async {
                let r = tokio::io::copy(&mut relay_r, &mut client_w).await;
                let _ = tokio::io::AsyncWriteExt::shutdown(&mut client_w).await;
                r
            };
            let _ = tokio::join!(up, down);
        });
    }
}
