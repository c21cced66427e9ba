//! Errors and warnings for people (stderr) and for the calling engine (`--log`, text or JSON
//! lines like runc's, which podman and containerd read back).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// Where messages go.
pub struct Logger {
    file: Option<File>,
    json: bool,
    debug: bool,
}

impl Logger {
    /// A logger writing to stderr and, if given, appending to `path`.
    pub fn new(path: Option<&Path>, format: &str, debug: bool) -> std::io::Result<Logger> {
        let file = match path {
            Some(p) => Some(OpenOptions::new().create(true).append(true).open(p)?),
            None => None,
        };
        Ok(Logger {
            file,
            json: format == "json",
            debug,
        })
    }

    fn line(&self, level: &str, msg: &str) {
        if let Some(mut f) = self.file.as_ref() {
            let time = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
            let line = if self.json {
                serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
            } else {
                format!("time=\"{time}\" level={level} msg={msg:?}")
            };
            let _ = writeln!(f, "{line}");
        }
    }

    /// An error: always on stderr, with the word clients and test suites look for (runc
    /// prints `level=error msg=...`).
    pub fn error(&self, msg: &str) {
        errln!("berth: error: {msg}");
        self.line("error", msg);
    }

    /// A warning: on stderr.
    pub fn warn(&self, msg: &str) {
        errln!("berth: warning: {msg}");
        self.line("warning", msg);
    }

    /// A debug message, with `--debug` only.
    pub fn debug(&self, msg: &str) {
        if self.debug {
            errln!("berth: debug: {msg}");
            self.line("debug", msg);
        }
    }
}
