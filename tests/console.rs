//! Terminals: the pty's master fd arrives over `--console-socket` (SCM_RIGHTS) as runc sends
//! it; a foreground `run` proxies the terminal itself.

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use common::*;

/// Read from the pty master until `want` shows up (or time runs out).
fn read_until(master: &mut std::fs::File, want: &str) -> String {
    let end = Instant::now() + Duration::from_secs(10);
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    while !got.contains(want) {
        assert!(Instant::now() < end, "never saw {want:?} in {got:?}");
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("read pty: {e}"),
        }
    }
    got
}

fn receive_master(listener: &UnixListener) -> (OwnedFd, String) {
    let (sock, _) = listener.accept().unwrap();
    let (fd, name) = berth::linux::channel::recv_fd(sock.as_fd()).unwrap();
    (fd, String::from_utf8(name).unwrap())
}

#[test]
fn console_socket_receives_the_pty_master() {
    let mut c = Ctr::from_config("console", example("terminal.json"));
    c.args(&["sh", "-c", "tty; stty size; readlink /proc/self/fd/0; cat"]);
    let sock_path = c.dir.join("console.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let b = c.bundle_arg();
    let accept = std::thread::spawn(move || receive_master(&listener));
    c.ok_detached(&[
        "create",
        "--bundle",
        &b,
        "--console-socket",
        sock_path.to_str().unwrap(),
        &c.id,
    ]);
    let (master, name) = accept.join().unwrap();
    assert_eq!(name, "/dev/pts/0");
    c.ok(&["start", &c.id]);
    let mut m = std::fs::File::from(master);
    let out = read_until(&mut m, "/dev/pts/0\r\n40 120\r\n/dev/pts/0\r\n");
    assert!(out.starts_with("/dev/pts/0"), "{out}");
    // input typed on the master reaches the container's stdin (cat echoes it back)
    m.write_all(b"typed-line\n").unwrap();
    read_until(&mut m, "typed-line\r\ntyped-line");
    c.ok(&["kill", &c.id, "KILL"]);
    c.wait_status("stopped");
}

#[test]
fn exec_tty_over_console_socket() {
    let c = Ctr::from_config("console-exec", example("terminal.json"));
    let mut c = c;
    c.args(&["sleep", "1000"]);
    c.set("/process/terminal", serde_json::json!(false));
    let init = c.start();
    wait_comm(init, "sleep");
    let sock_path = c.dir.join("exec.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let accept = std::thread::spawn(move || receive_master(&listener));
    c.ok_detached(&[
        "exec",
        "--tty",
        "--detach",
        "--console-socket",
        sock_path.to_str().unwrap(),
        &c.id,
        "sh",
        "-c",
        "tty; echo done",
    ]);
    let (master, _) = accept.join().unwrap();
    let mut m = std::fs::File::from(master);
    read_until(&mut m, "/dev/pts/0\r\ndone");
}

#[test]
fn terminal_create_needs_a_console_socket() {
    let c = Ctr::from_config("console-missing", example("terminal.json"));
    let b = c.bundle_arg();
    let out = c.berth_detached(&["create", "--bundle", &b, &c.id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--console-socket is required"));
    c.assert_gone();
}

#[test]
fn foreground_run_proxies_the_terminal() {
    let mut c = Ctr::from_config("console-fg", example("terminal.json"));
    c.args(&["sh", "-c", "tty; echo hello"]);
    let (code, out, err) = c.run();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "/dev/pts/0\r\nhello\r\n");
    c.assert_gone();
}
