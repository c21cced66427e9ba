//! PortForward as kubectl does it: the request names no port; over SPDY each connection is an
//! error and a data stream whose headers carry the port and a request ID, several ports and
//! connections in one session; over WebSocket the ports come from the query and each has a
//! data and an error channel that start with the port. Pod-network and host-network pods.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use k8s_cri::v1 as cri;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::daemon::{Daemon, block_on, container, go_binary, pod_with, pull, remove_pod, sandbox};

/// A container serving `port-<P>` on each port P of `ports` (busybox httpd).
fn servers(ports: &[u16]) -> String {
    let mut s = String::new();
    for p in ports {
        s.push_str(&format!(
            "mkdir -p /w{p} && echo port-{p} > /w{p}/index.html && httpd -p {p} -h /w{p} && "
        ));
    }
    s + "exec sleep 1000"
}

async fn forward_url(d: &Daemon, pod: &str) -> String {
    d.rt()
        .await
        .port_forward(cri::PortForwardRequest {
            pod_sandbox_id: pod.to_string(),
            port: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .url
}

/// Run the SPDY client's `pfmulti` until every server answers (they start with the pod).
async fn spdy_multi(d: &Daemon, pod: &str, ports: &str, n: usize) -> Vec<String> {
    let gospdy = go_binary("gospdy");
    for _ in 0..100 {
        let url = forward_url(d, pod).await;
        let out = tokio::process::Command::new(&gospdy)
            .args(["pfmulti", &url, ports, &n.to_string()])
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<String> = text.lines().map(String::from).collect();
        if lines.iter().all(|l| !l.contains("refused")) {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the pod's servers never answered");
}

async fn ws_connect(url: &str) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v4.channel.k8s.io".parse().unwrap(),
    );
    let tcp = tokio::net::TcpStream::connect(req.uri().authority().unwrap().to_string())
        .await
        .unwrap();
    tokio_tungstenite::client_async(req, tcp).await.unwrap().0
}

/// One WebSocket session forwarding `ports`: checks each channel's port prefix, sends a GET on
/// each data channel, returns each port's answer.
async fn ws_session(url: String, ports: Vec<u16>) -> Vec<String> {
    let query: Vec<String> = ports.iter().map(|p| format!("port={p}")).collect();
    let mut ws = ws_connect(&format!(
        "{}?{}",
        url.replace("http://", "ws://"),
        query.join("&")
    ))
    .await;
    let mut firsts = 0;
    while firsts < 2 * ports.len() {
        let Message::Binary(b) = ws.next().await.unwrap().unwrap() else {
            continue;
        };
        let port = ports[usize::from(b[0] / 2)];
        assert_eq!(
            &b[1..],
            &port.to_le_bytes(),
            "channel {} did not start with {port}",
            b[0]
        );
        firsts += 1;
    }
    for i in 0..ports.len() {
        let mut req = vec![(2 * i) as u8];
        req.extend_from_slice(b"GET /index.html HTTP/1.0\r\n\r\n");
        ws.send(Message::binary(req)).await.unwrap();
    }
    let mut answers = vec![String::new(); ports.len()];
    while answers
        .iter()
        .zip(&ports)
        .any(|(a, p)| !a.contains(&format!("port-{p}")))
    {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap_or_else(|_| panic!("no answer through the forward: {answers:?}"))
            .unwrap()
            .unwrap();
        if let Message::Binary(b) = m {
            assert_eq!(
                b[0] % 2,
                0,
                "error channel {}: {}",
                b[0],
                String::from_utf8_lossy(&b[1..])
            );
            answers[usize::from(b[0] / 2)].push_str(&String::from_utf8_lossy(&b[1..]));
        }
    }
    answers
}

#[test]
fn port_forward_carries_several_ports_and_connections_per_session() {
    let d = Daemon::start("cri-portforward");
    let image = d.env.image("base");
    let host_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    block_on(async {
        let image_ref = pull(&d, &image).await;
        let (pod, _) = pod_with(
            &d,
            "pf",
            sandbox("pf"),
            container("web", &image_ref, &["sh", "-c", &servers(&[8080, 8081])]),
        )
        .await;
        // SPDY: two ports, three connections each, all open at once in one session
        let mut lines = spdy_multi(&d, &pod, "8080,8081", 3).await;
        lines.sort();
        let want: Vec<String> = ["8080", "8080", "8080", "8081", "8081", "8081"]
            .iter()
            .map(|p| format!("{p}:port-{p}|"))
            .collect();
        assert_eq!(lines, want);
        // a port nobody listens on: the pair's error stream says so
        let url = forward_url(&d, &pod).await;
        let out = tokio::process::Command::new(go_binary("gospdy"))
            .args(["pfmulti", &url, "8089", "1"])
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.starts_with("8089:|port-forward to port 8089: "),
            "{text}"
        );

        // WebSocket: three sessions at once, each forwarding both ports
        let sessions = (0..3).map(|_| {
            let d = &d;
            let pod = pod.clone();
            async move { ws_session(forward_url(d, &pod).await, vec![8080, 8081]).await }
        });
        for answers in futures_util::future::join_all(sessions).await {
            assert!(answers[0].contains(" 200 OK") && answers[0].contains("port-8080"));
            assert!(answers[1].contains(" 200 OK") && answers[1].contains("port-8081"));
        }
        remove_pod(&d, &pod).await;

        // a host-network pod: the forward reaches the host's loopback
        let mut cfg = sandbox("pfhost");
        cfg.linux = super::daemon::namespaces(
            cri::NamespaceMode::Node,
            cri::NamespaceMode::Container,
            cri::NamespaceMode::Pod,
        );
        let (pod, _) = pod_with(
            &d,
            "pfhost",
            cfg,
            container("web", &image_ref, &["sh", "-c", &servers(&[host_port])]),
        )
        .await;
        let lines = spdy_multi(&d, &pod, &host_port.to_string(), 3).await;
        assert_eq!(lines, vec![format!("{host_port}:port-{host_port}|"); 3]);
        remove_pod(&d, &pod).await;
    });
}
