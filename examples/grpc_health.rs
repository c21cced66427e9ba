//! A grpc.health.v1 server for the probe benchmarks (tests/probes-memory.sh): answers SERVING
//! (for the service "") on each port given, on 127.0.0.1, until killed.
//!
//! Usage: grpc_health PORT...

#[path = "../tests/common/grpc_health.rs"]
mod grpc_health;

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
        let mut servers = Vec::new();
        for p in ports {
            let l = tokio::net::TcpListener::bind(("127.0.0.1", p))
                .await
                .expect("bind");
            servers.push(tokio::spawn(grpc_health::serve(l)));
        }
        for s in servers {
            let _ = s.await;
        }
    });
}
