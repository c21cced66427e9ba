//! Exec, Attach and PortForward: the RPC answers with a URL of the streaming server, a
//! WebSocket client speaks the channel protocol kubectl and crictl use.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use k8s_cri::v1 as cri;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::daemon::{
    Daemon, add_container, block_on, container, pod_with, pull, remove_pod, sandbox,
};

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn connect(url: &str, protocol: &str) -> Ws {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    let host = req.uri().authority().unwrap().to_string();
    let tcp = tokio::net::TcpStream::connect(host).await.unwrap();
    let (ws, resp) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    assert_eq!(
        resp.headers()["sec-websocket-protocol"].to_str().unwrap(),
        protocol
    );
    ws
}

/// Read frames until the error channel's status; returns (stdout, stderr, status JSON).
async fn collect(ws: &mut Ws) -> (String, String, serde_json::Value) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    loop {
        let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("no frame")
            .expect("stream ended without a status")
            .unwrap();
        let Message::Binary(b) = m else { continue };
        match b.first() {
            Some(1) => out.extend_from_slice(&b[1..]),
            Some(2) => err.extend_from_slice(&b[1..]),
            Some(3) => {
                return (
                    String::from_utf8_lossy(&out).into(),
                    String::from_utf8_lossy(&err).into(),
                    serde_json::from_slice(&b[1..]).unwrap(),
                );
            }
            _ => {}
        }
    }
}

#[test]
fn exec_attach_and_port_forward() {
    let d = Daemon::start("cri-stream");
    let image = d.env.image("base");
    block_on(async {
        let image_ref = pull(&d, &image).await;
        let (pod, id) = pod_with(
            &d,
            "s",
            sandbox("s"),
            container(
                "web",
                &image_ref,
                &["sh", "-c", "echo served > /tmp/index.html; httpd -p 8080 -h /tmp; while true; do echo tick; sleep 0.2; done"],
            ),
        )
        .await;
        let mut rt = d.rt().await;

        // exec with stdin: the process reads what the client sends, exits 5
        let url = rt
            .exec(cri::ExecRequest {
                container_id: id.clone(),
                cmd: vec![
                    "sh".into(),
                    "-c".into(),
                    "read x; echo got $x; echo err >&2; exit 5".into(),
                ],
                stdin: true,
                stdout: true,
                stderr: true,
                tty: false,
            })
            .await
            .unwrap()
            .into_inner()
            .url;
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        let mut ws = connect(&url.replace("http://", "ws://"), "v5.channel.k8s.io").await;
        ws.send(Message::binary(b"\0hello\n".to_vec()))
            .await
            .unwrap();
        ws.send(Message::binary(vec![255, 0])).await.unwrap();
        let (out, err, st) = collect(&mut ws).await;
        assert_eq!(out, "got hello\n");
        assert_eq!(err, "err\n");
        assert_eq!(st["status"], "Failure");
        assert_eq!(st["reason"], "NonZeroExitCode");
        assert_eq!(st["details"]["causes"][0]["message"], "5");
        // a token works once
        let mut req = url
            .replace("http://", "ws://")
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "v4.channel.k8s.io".parse().unwrap(),
        );
        let tcp = tokio::net::TcpStream::connect(req.uri().authority().unwrap().to_string())
            .await
            .unwrap();
        assert!(tokio_tungstenite::client_async(req, tcp).await.is_err());

        // exec with a terminal: the process sees a tty of the size the client sets
        let url = rt
            .exec(cri::ExecRequest {
                container_id: id.clone(),
                cmd: vec!["sh".into(), "-c".into(), "sleep 0.5; stty size; tty".into()],
                stdin: true,
                stdout: true,
                stderr: false,
                tty: true,
            })
            .await
            .unwrap()
            .into_inner()
            .url;
        let mut ws = connect(&url.replace("http://", "ws://"), "v4.channel.k8s.io").await;
        let mut resize = vec![4u8];
        resize.extend_from_slice(br#"{"Width":100,"Height":30}"#);
        ws.send(Message::binary(resize)).await.unwrap();
        let (out, _, st) = collect(&mut ws).await;
        assert_eq!(st["status"], "Success", "{out}");
        assert!(out.contains("30 100"), "{out:?}");
        assert!(out.contains("/dev/pts/"), "{out:?}");

        // attach: the container's output from now on
        let url = rt
            .attach(cri::AttachRequest {
                container_id: id.clone(),
                stdout: true,
                stderr: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .url;
        let mut ws = connect(&url.replace("http://", "ws://"), "v5.channel.k8s.io").await;
        let mut got = String::new();
        while !got.contains("tick\ntick\n") {
            let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .expect("attach sent nothing")
                .unwrap()
                .unwrap();
            if let Message::Binary(b) = m
                && b.first() == Some(&1)
            {
                got.push_str(&String::from_utf8_lossy(&b[1..]));
            }
        }
        drop(ws);

        // port forward to the pod's port 8080 (httpd on the pod's loopback)
        let url = rt
            .port_forward(cri::PortForwardRequest {
                pod_sandbox_id: pod.clone(),
                port: vec![8080],
            })
            .await
            .unwrap()
            .into_inner()
            .url;
        let mut ws = connect(
            &format!("{}?port=8080", url.replace("http://", "ws://")),
            "v4.channel.k8s.io",
        )
        .await;
        let mut first = Vec::new();
        while first.len() < 2 {
            if let Message::Binary(b) = ws.next().await.unwrap().unwrap() {
                assert_eq!(
                    &b[1..],
                    &8080u16.to_le_bytes(),
                    "channel {} did not start with the port",
                    b[0]
                );
                first.push(b[0]);
            }
        }
        assert_eq!(first, vec![0, 1]);
        let mut req = vec![0u8];
        req.extend_from_slice(b"GET /index.html HTTP/1.0\r\n\r\n");
        ws.send(Message::binary(req)).await.unwrap();
        let mut resp = String::new();
        while !resp.contains("served") {
            let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .expect("no answer through the forward")
                .unwrap()
                .unwrap();
            if let Message::Binary(b) = m {
                assert_eq!(b[0], 0, "error: {}", String::from_utf8_lossy(&b[1..]));
                resp.push_str(&String::from_utf8_lossy(&b[1..]));
            }
        }
        assert!(
            resp.starts_with("HTTP/1.") && resp.contains(" 200 OK"),
            "{resp}"
        );
        drop(ws);

        // the same through SPDY/3.1, kubelet's and crictl's default transport, with a real
        // SPDY client (Debian's docker/spdystream, which client-go builds on)
        let gospdy = super::daemon::go_binary("gospdy");
        let url = rt
            .exec(cri::ExecRequest {
                container_id: id.clone(),
                cmd: vec![
                    "sh".into(),
                    "-c".into(),
                    "read x; echo got $x; echo err >&2; exit 6".into(),
                ],
                stdin: true,
                stdout: true,
                stderr: true,
                tty: false,
            })
            .await
            .unwrap()
            .into_inner()
            .url;
        let text = run_ok(&gospdy, &["exec", &url]).await;
        assert!(
            text.starts_with("OUT:got hello\n|ERR:err\n|STATUS:{"),
            "{text}"
        );
        assert!(
            text.contains("\"NonZeroExitCode\"") && text.contains("\"message\":\"6\""),
            "{text}"
        );
        let url = rt
            .port_forward(cri::PortForwardRequest {
                pod_sandbox_id: pod.clone(),
                port: vec![8080],
            })
            .await
            .unwrap()
            .into_inner()
            .url;
        let text = run_ok(&gospdy, &["pf", &url, "8080"]).await;
        assert!(
            text.contains(" 200 OK") && text.contains("served"),
            "{text}"
        );

        // containers with stdin and a terminal: attach types into them
        let cfg = sandbox("s");
        let mut shell = container("shell", &image_ref, &["sh"]);
        shell.tty = true;
        shell.stdin = true;
        let mut once = container("once", &image_ref, &["sh", "-c", "read x; echo got:$x"]);
        once.stdin = true;
        once.stdin_once = true;
        let mut ids = Vec::new();
        for c in [shell, once] {
            ids.push(add_container(&mut rt, &pod, &cfg, c).await);
        }
        let attach = |id: &str, tty: bool| cri::AttachRequest {
            container_id: id.to_string(),
            stdin: true,
            tty,
            stdout: true,
            stderr: !tty,
        };
        let url = rt
            .attach(attach(&ids[0], true))
            .await
            .unwrap()
            .into_inner()
            .url;
        let mut ws = connect(&url.replace("http://", "ws://"), "v5.channel.k8s.io").await;
        let mut resize = vec![4u8];
        resize.extend_from_slice(br#"{"Width":90,"Height":20}"#);
        ws.send(Message::binary(resize)).await.unwrap();
        ws.send(Message::binary(
            b"\0echo $((6*7)); stty size; tty\n".to_vec(),
        ))
        .await
        .unwrap();
        let mut got = String::new();
        while !(got.contains("\n42") && got.contains("20 90") && got.contains("/dev/pts/")) {
            let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .unwrap_or_else(|_| panic!("the shell did not answer: {got:?}"))
                .unwrap()
                .unwrap();
            if let Message::Binary(b) = m
                && b.first() == Some(&1)
            {
                got.push_str(&String::from_utf8_lossy(&b[1..]));
            }
        }
        drop(ws);
        // stdinOnce: the first client's input ends the container's stdin; it reads and exits
        let url = rt
            .attach(attach(&ids[1], false))
            .await
            .unwrap()
            .into_inner()
            .url;
        let mut ws = connect(&url.replace("http://", "ws://"), "v5.channel.k8s.io").await;
        ws.send(Message::binary(b"\0abc\n".to_vec())).await.unwrap();
        ws.send(Message::binary(vec![255, 0])).await.unwrap();
        let (out, _, st) = collect(&mut ws).await;
        assert_eq!(out, "got:abc\n");
        assert_eq!(st["status"], "Success");
        let s = super::daemon::wait_state(&d, &ids[1], cri::ContainerState::ContainerExited).await;
        assert_eq!(s.exit_code, 0);
        let log = std::fs::read_to_string(&s.log_path).unwrap();
        assert!(log.contains(" stdout F got:abc"), "{log}");

        // unknown tokens are refused
        let bad = url.rsplit_once('/').unwrap().0.to_string() + "/nosuchtoken";
        let req = bad
            .replace("http://", "ws://")
            .into_client_request()
            .unwrap();
        let tcp = tokio::net::TcpStream::connect(req.uri().authority().unwrap().to_string())
            .await
            .unwrap();
        assert!(tokio_tungstenite::client_async(req, tcp).await.is_err());
        remove_pod(&d, &pod).await;
    });
}

/// Runs a client program; it must succeed. Returns its standard output.
async fn run_ok(program: &std::path::Path, args: &[&str]) -> String {
    let out = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}
