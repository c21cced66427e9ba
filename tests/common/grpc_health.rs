//! A grpc.health.v1 Health/Check server (h2 under tokio), for the gRPC probe tests
//! (tests/pods/probes.rs) and benchmarks (examples/grpc_health.rs): the service "" is
//! SERVING, "down" NOT_SERVING, any other unknown (grpc-status 5).

/// Answer every connection `l` accepts, until the future is dropped.
pub async fn serve(l: tokio::net::TcpListener) {
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

async fn answer(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<bytes::Bytes>,
) {
    let mut body = req.into_body();
    let mut msg = Vec::new();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
        msg.extend_from_slice(&chunk);
    }
    // 5 bytes of gRPC framing, then field 1 (tag 0x0a, a one-byte length here)
    let service = msg
        .get(7..)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .unwrap_or_default();
    let status = match service.as_str() {
        "" => Some(1u8),
        "down" => Some(2),
        _ => None,
    };
    let head = http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc");
    match status {
        Some(s) => {
            let Ok(mut stream) = respond.send_response(head.body(()).expect("a response"), false)
            else {
                return;
            };
            // HealthCheckResponse { status }
            let _ = stream.send_data(bytes::Bytes::from(vec![0, 0, 0, 0, 2, 0x08, s]), false);
            let mut t = http::HeaderMap::new();
            t.insert("grpc-status", http::HeaderValue::from_static("0"));
            let _ = stream.send_trailers(t);
        }
        None => {
            let r = head
                .header("grpc-status", "5")
                .header("grpc-message", "unknown service")
                .body(())
                .expect("a response");
            let _ = respond.send_response(r, true);
        }
    }
}
