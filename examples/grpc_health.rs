//! A grpc.health.v1 server for the probe benchmarks (tests/probes-memory.sh): answers SERVING
//! for every service on each port given, on 127.0.0.1, until killed.
//!
//! Usage: grpc_health PORT...

async fn answer(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<bytes::Bytes>,
) {
    let mut body = req.into_body();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let head = http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .body(())
        .expect("a response");
    let Ok(mut stream) = respond.send_response(head, false) else {
        return;
    };
    // HealthCheckResponse { status: SERVING }
    let _ = stream.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 2, 0x08, 1]), false);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let _ = stream.send_trailers(trailers);
}

async fn serve(port: u16) {
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    loop {
        let Ok((sock, _)) = l.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let Ok(mut conn) = h2::server::handshake(sock).await else {
                return;
            };
            while let Some(Ok((req, respond))) = conn.accept().await {
                tokio::spawn(answer(req, respond));
            }
        });
    }
}

fn main() {
    let ports: Vec<u16> = std::env::args()
        .skip(1)
        .map(|p| p.parse().expect("a port number"))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async move {
        let servers: Vec<_> = ports.into_iter().map(|p| tokio::spawn(serve(p))).collect();
        for s in servers {
            let _ = s.await;
        }
    });
}
