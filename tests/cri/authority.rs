//! A client that sends the socket path as HTTP/2 `:authority`, as the Go gRPC clients of
//! crictl 1.26–1.29 do (and grpc-java, and Python's with `%2F`): frames written by hand, so
//! nothing in between fixes the authority up.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use prost::Message;

use super::daemon::Daemon;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let l = (payload.len() as u32).to_be_bytes();
    let mut v = vec![l[1], l[2], l[3], kind, flags];
    v.extend_from_slice(&stream.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Call Version with this `:authority`; returns (grpc-status, the decoded response).
fn version_with_authority(
    socket: &std::path::Path,
    authority: &str,
) -> (String, Option<k8s_cri::v1::VersionResponse>) {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut enc = loona_hpack::Encoder::new();
    let headers = enc.encode(vec![
        (&b":method"[..], &b"POST"[..]),
        (b":scheme", b"http"),
        (b":path", b"/runtime.v1.RuntimeService/Version"),
        (b":authority", authority.as_bytes()),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"user-agent", b"grpc-go/1.58.3"),
    ]);
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    out.extend(frame(0x1, 0x4, 1, &headers));
    out.extend(frame(0x0, 0x1, 1, &[0, 0, 0, 0, 0]));
    s.write_all(&out).unwrap();
    let mut dec = loona_hpack::Decoder::new();
    let (mut grpc_status, mut resp) = (String::new(), None);
    loop {
        let mut h = [0u8; 9];
        if s.read_exact(&mut h).is_err() {
            break;
        }
        let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
        let mut p = vec![0u8; len];
        s.read_exact(&mut p).unwrap();
        match h[3] {
            0x4 if h[4] & 1 == 0 => s.write_all(&frame(0x4, 1, 0, &[])).unwrap(),
            0x0 if len > 5 => resp = Some(k8s_cri::v1::VersionResponse::decode(&p[5..]).unwrap()),
            0x1 => {
                for (n, v) in dec.decode(&p).unwrap() {
                    if n == b"grpc-status" {
                        grpc_status = String::from_utf8(v).unwrap();
                    }
                }
                if h[4] & 1 != 0 {
                    break; // END_STREAM: the trailers
                }
            }
            0x3 => panic!("the stream was reset: error code {:?}", &p),
            _ => {}
        }
    }
    (grpc_status, resp)
}

#[test]
fn a_socket_path_as_authority_is_accepted() {
    let d = Daemon::start("cri-authority");
    let path = d.socket.display().to_string();
    for authority in [
        path.clone(),
        path.replace('/', "%2F"),
        "localhost".to_string(),
    ] {
        let (status, resp) = version_with_authority(&d.socket, &authority);
        assert_eq!(status, "0", "authority {authority:?}");
        let resp = resp.unwrap_or_else(|| panic!("no response for authority {authority:?}"));
        assert_eq!(resp.runtime_name, "berth");
    }
}

/// A real Go gRPC client (Debian's grpc-go, built here from tests/cri/goclient) dialing the
/// socket path as crictl 1.26–1.29 do: grpc-go sends that path as `:authority`.
#[test]
fn a_go_grpc_client_dialing_the_socket_path_is_served() {
    let d = Daemon::start("cri-goclient");
    let bin = super::daemon::go_binary("goclient");
    let out = std::process::Command::new(&bin)
        .arg(&d.socket)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the Go client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "berth\nberth\nberth\n"
    );
}
