//! What crosses the pod monitor's boundaries, typed: the requests the library sends over the
//! monitor's socket and its answers (one JSON line each way per connection), the worker's
//! result, and the frames of an attached connection.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::pod::error::{Error, ErrorKind, Result};
use crate::pod::store::PodDir;

/// A request to the monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Create and start a recorded container (a restart of an exited one counts an attempt).
    Start {
        id: String,
    },
    /// Signal a container, then SIGKILL it after `timeout_ms`; it is not restarted.
    Stop {
        id: String,
        signal: i32,
        timeout_ms: u64,
    },
    /// Stop tracking a container (it was removed).
    Forget {
        id: String,
    },
    /// Run init containers in order, then the apps (supervised pods).
    Sequence {
        inits: Vec<String>,
        apps: Vec<String>,
    },
    /// Reopen a container's log file.
    ReopenLog {
        id: String,
    },
    /// Attach to a running container: after the `Ok` answer the connection carries
    /// [`attach`] frames.
    Attach {
        id: String,
    },
    Ping,
    /// Kill the pause process and exit.
    Shutdown,
}

/// The monitor's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Ok,
    Started {
        pid: i32,
    },
    Pong {
        pid: i32,
        pause: Option<i32>,
    },
    /// A failure and its kind (a monitor of an older berth sends no kind: internal).
    Error {
        #[serde(default)]
        kind: ErrorKind,
        message: String,
    },
}

impl Response {
    /// The answer to `e`.
    pub fn error(e: &Error) -> Response {
        Response::Error {
            kind: e.kind(),
            message: e.message(),
        }
    }

    /// An error answer as the library's error, of its kind.
    pub fn into_result(self) -> Result<Response> {
        match self {
            Response::Error { kind, message } => Err(Error::of_kind(kind, message)),
            r => Ok(r),
        }
    }

    /// `Ok`, or the error it carries, or an unexpected answer to `what`.
    pub fn expect_ok(self, what: &str) -> Result<()> {
        match self.into_result()? {
            Response::Ok => Ok(()),
            other => Err(Error::Internal(format!(
                "the pod monitor answered {other:?} to {what}"
            ))),
        }
    }
}

/// What the worker that creates and starts a container reports to the monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum WorkerResult {
    /// `oom_kills`: the new cgroup's OOM-kill count before the program started.
    Started {
        pid: i32,
        #[serde(default)]
        oom_kills: u64,
    },
    Failed {
        kind: ErrorKind,
        message: String,
    },
}

/// Connect to a pod's monitor and send one request; the connection is returned for
/// [`Request::Attach`], whose frames follow the answer.
pub fn send(dir: &PodDir, req: &Request, timeout: Duration) -> Result<(Response, UnixStream)> {
    let sock = dir.socket();
    let mut s = UnixStream::connect(&sock).map_err(|e| Error::Io {
        step: format!("connect to pod monitor {}", sock.display()),
        err: e,
    })?;
    s.set_read_timeout(Some(timeout)).ok();
    let mut line = serde_json::to_vec(req).expect("requests serialise");
    line.push(b'\n');
    s.write_all(&line).map_err(|e| Error::Io {
        step: "send to pod monitor".into(),
        err: e,
    })?;
    // byte by byte: what follows the answer line (attach frames) is the caller's
    let mut answer = Vec::new();
    let mut b = [0u8; 1];
    while answer.last() != Some(&b'\n') {
        match std::io::Read::read(&mut s, &mut b) {
            Ok(0) => break,
            Ok(_) => answer.push(b[0]),
            // a signal to this process (a daemon's SIGCHLD) is not the monitor's answer
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Io {
                    step: "read pod monitor's answer".into(),
                    err: e,
                });
            }
        }
    }
    if answer.is_empty() {
        return Err(Error::Internal(
            "the pod monitor closed the connection without an answer".into(),
        ));
    }
    let r = serde_json::from_slice(&answer)
        .map_err(|e| Error::Internal(format!("pod monitor's answer: {e}")))?;
    s.set_read_timeout(None).ok();
    Ok((r, s))
}

/// Send one request to a pod's monitor and return its answer.
pub fn request(dir: &PodDir, req: &Request, timeout: Duration) -> Result<Response> {
    send(dir, req, timeout).map(|(r, _)| r)
}

/// Read one request line (the monitor's side).
pub fn read_request(conn: &UnixStream) -> std::result::Result<Request, String> {
    let mut line = String::new();
    BufReader::new(conn)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&line).map_err(|e| format!("bad request: {e}"))
}

/// Write one answer line (the monitor's side).
pub fn write_response(mut conn: &UnixStream, r: &Response) -> std::io::Result<()> {
    let mut out = serde_json::to_vec(r).expect("responses serialise");
    out.push(b'\n');
    conn.write_all(&out)
}

/// The frames of an attached connection: `[kind u8][len u32 BE][payload]`. From the monitor:
/// 1 stdout, 2 stderr. To it: 0 stdin data, 1 end of stdin, 2 terminal size (rows u16 BE,
/// cols u16 BE). One codec for the monitor, the library and the CRI's streaming server.
pub mod attach {
    /// A frame from the monitor: the container's output.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Output {
        Stdout(Vec<u8>),
        Stderr(Vec<u8>),
    }

    /// A frame to the monitor: the client's input.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Input {
        Stdin(Vec<u8>),
        EndOfStdin,
        Resize { rows: u16, cols: u16 },
    }

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(payload.len() + 5);
        v.push(kind);
        v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    impl Output {
        pub fn encode(&self) -> Vec<u8> {
            match self {
                Output::Stdout(d) => frame(1, d),
                Output::Stderr(d) => frame(2, d),
            }
        }
    }

    impl Input {
        pub fn encode(&self) -> Vec<u8> {
            match self {
                Input::Stdin(d) => frame(0, d),
                Input::EndOfStdin => frame(1, &[]),
                Input::Resize { rows, cols } => {
                    let mut p = rows.to_be_bytes().to_vec();
                    p.extend_from_slice(&cols.to_be_bytes());
                    frame(2, &p)
                }
            }
        }
    }

    /// Reassembles frames from the bytes of a stream, as they arrive.
    #[derive(Debug, Default)]
    pub struct Decoder {
        buf: Vec<u8>,
    }

    impl Decoder {
        pub fn feed(&mut self, data: &[u8]) {
            self.buf.extend_from_slice(data);
        }

        /// The next whole frame: (kind, payload).
        fn next_raw(&mut self) -> Option<(u8, Vec<u8>)> {
            if self.buf.len() < 5 {
                return None;
            }
            let len =
                u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
            if self.buf.len() < 5 + len {
                return None;
            }
            let f: Vec<u8> = self.buf.drain(..5 + len).collect();
            Some((f[0], f[5..].to_vec()))
        }

        /// The next output frame (unknown kinds are skipped).
        pub fn next_output(&mut self) -> Option<Output> {
            loop {
                match self.next_raw()? {
                    (1, d) => return Some(Output::Stdout(d)),
                    (2, d) => return Some(Output::Stderr(d)),
                    _ => {}
                }
            }
        }

        /// The next input frame (unknown kinds and malformed sizes are skipped).
        pub fn next_input(&mut self) -> Option<Input> {
            loop {
                match self.next_raw()? {
                    (0, d) => return Some(Input::Stdin(d)),
                    (1, _) => return Some(Input::EndOfStdin),
                    (2, d) if d.len() == 4 => {
                        return Some(Input::Resize {
                            rows: u16::from_be_bytes([d[0], d[1]]),
                            cols: u16::from_be_bytes([d[2], d[3]]),
                        });
                    }
                    _ => {}
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn frames_round_trip_across_arbitrary_splits() {
            let inputs = [
                Input::Stdin(b"hello".to_vec()),
                Input::Resize { rows: 20, cols: 90 },
                Input::EndOfStdin,
            ];
            let bytes: Vec<u8> = inputs.iter().flat_map(|i| i.encode()).collect();
            for cut in 0..bytes.len() {
                let mut d = Decoder::default();
                d.feed(&bytes[..cut]);
                let mut got = Vec::new();
                while let Some(i) = d.next_input() {
                    got.push(i);
                }
                d.feed(&bytes[cut..]);
                while let Some(i) = d.next_input() {
                    got.push(i);
                }
                assert_eq!(got, inputs);
            }
            let out = [Output::Stdout(b"a".to_vec()), Output::Stderr(vec![])];
            let mut d = Decoder::default();
            d.feed(&out.iter().flat_map(|o| o.encode()).collect::<Vec<u8>>());
            assert_eq!(d.next_output(), Some(out[0].clone()));
            assert_eq!(d.next_output(), Some(out[1].clone()));
            assert_eq!(d.next_output(), None);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_signal_while_waiting_for_the_answer_is_not_a_failure() {
        use std::os::unix::net::UnixListener;
        // before the fix, a signal (here SIGUSR1, handled without SA_RESTART, as a daemon's
        // SIGCHLD can be) during the read failed the request with EINTR
        crate::linux::sys::interrupting_handler(libc::SIGUSR1);
        let dir = std::env::temp_dir().join(format!("berth-eintr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pd = PodDir(dir.clone());
        let listener = UnixListener::bind(pd.socket()).unwrap();
        let monitor = std::thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_millis(300));
            let mut a = serde_json::to_vec(&Response::Ok).unwrap();
            a.push(b'\n');
            std::io::Write::write_all(&mut c, &a).unwrap();
        });
        let client =
            std::thread::spawn(move || request(&pd, &Request::Ping, Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(100));
        use std::os::unix::thread::JoinHandleExt;
        crate::linux::sys::signal_thread(client.as_pthread_t(), libc::SIGUSR1);
        let r = client.join().unwrap();
        monitor.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(r.unwrap(), Response::Ok);
    }

    use super::*;

    #[test]
    fn wire_forms_are_stable_and_errors_keep_their_kind() {
        // what monitors of earlier berths send and expect
        assert_eq!(
            serde_json::to_string(&Request::Stop {
                id: "c".into(),
                signal: 15,
                timeout_ms: 100
            })
            .unwrap(),
            r#"{"op":"stop","id":"c","signal":15,"timeout_ms":100}"#
        );
        let old: Response = serde_json::from_str(r#"{"result":"error","message":"boom"}"#).unwrap();
        assert_eq!(old.into_result().unwrap_err().kind(), ErrorKind::Internal);
        let e = Error::NotFound("container \"x\"".into());
        let r: Response =
            serde_json::from_str(&serde_json::to_string(&Response::error(&e)).unwrap()).unwrap();
        let back = r.into_result().unwrap_err();
        assert_eq!(back.kind(), ErrorKind::NotFound);
        assert_eq!(back.to_string(), e.to_string());
        assert_eq!(
            serde_json::to_string(&WorkerResult::Started {
                pid: 7,
                oom_kills: 1
            })
            .unwrap(),
            r#"{"result":"started","pid":7,"oom_kills":1}"#
        );
    }
}
