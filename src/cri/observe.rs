//! What `berth serve` says about the RPCs it serves: each one at debug, each failed one at
//! warn with its code and message, each slow one (past the config's `slow_rpc`) at warn with
//! its time. A tower layer around every service, so no handler has to remember it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::{Level, log};

/// The layer's service: times each call and reads the gRPC status of its answer.
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
    slow: Duration,
}

impl<S> Observe<S> {
    pub fn new(inner: S, slow: Duration) -> Self {
        Observe { inner, slow }
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for Observe<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    R: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let rpc = req.uri().path().to_string();
        log(Level::Debug, &format!("rpc {rpc}"));
        let start = Instant::now();
        let slow = self.slow;
        let fut = self.inner.call(req);
        Box::pin(async move {
            let r = fut.await;
            let took = start.elapsed();
            if let Ok(resp) = &r {
                if let Some((level, line)) = failure(&rpc, resp.headers(), took) {
                    log(level, &line);
                }
            }
            if took > slow {
                log(
                    Level::Warn,
                    &format!("rpc {rpc} was slow: {:.3} s", took.as_secs_f64()),
                );
            }
            r
        })
    }
}

/// The log line of a failed call (at error for berth's own failures, else warn): tonic answers
/// an error with `grpc-status` and `grpc-message` (percent-encoded) in the headers of a
/// trailers-only response.
pub fn failure(rpc: &str, headers: &http::HeaderMap, took: Duration) -> Option<(Level, String)> {
    let code: i32 = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    if code == 0 {
        return None;
    }
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    let code = tonic::Code::from(code);
    let level = match code {
        tonic::Code::Internal | tonic::Code::Unknown | tonic::Code::DataLoss => Level::Error,
        _ => Level::Warn,
    };
    Some((
        level,
        format!(
            "rpc {rpc} failed after {:.3} s: {code:?}: {message}",
            took.as_secs_f64()
        ),
    ))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_call_is_told_with_code_and_message() {
        let mut h = http::HeaderMap::new();
        h.insert("grpc-status", "5".parse().unwrap());
        h.insert(
            "grpc-message",
            "container%20%22x%22%3A%20not%20found".parse().unwrap(),
        );
        let (level, line) = failure(
            "/runtime.v1.RuntimeService/ContainerStatus",
            &h,
            Duration::from_millis(3),
        )
        .unwrap();
        assert_eq!(level, Level::Warn);
        assert_eq!(
            line,
            "rpc /runtime.v1.RuntimeService/ContainerStatus failed after 0.003 s: NotFound: container \"x\": not found"
        );
        h.insert("grpc-status", "0".parse().unwrap());
        assert_eq!(failure("/x", &h, Duration::ZERO), None);
        assert_eq!(failure("/x", &http::HeaderMap::new(), Duration::ZERO), None);
    }
}
