//! Probes (liveness, readiness, startup) as a container's config carries them, and kubelet's
//! rules for what their results mean: pure, unit-tested. The pod monitor runs them
//! (`monitor::probes`); under the CRI kubelet probes by itself and none reach berth.

use serde::{Deserialize, Serialize};

/// A container's probes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<Probe>,
}

impl Probes {
    pub fn is_empty(&self) -> bool {
        self.startup.is_none() && self.liveness.is_none() && self.readiness.is_none()
    }
}

/// Which of a container's probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Startup => "startup",
            Kind::Liveness => "liveness",
            Kind::Readiness => "readiness",
        }
    }
}

/// One probe, its defaults applied (Kubernetes': zero or omitted take them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub handler: Handler,
    pub initial_delay_s: u32,
    pub period_s: u32,
    pub timeout_s: u32,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// The grace period of a kill this probe causes (liveness and startup), else the pod's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_s: Option<u64>,
}

/// Kubernetes' defaults.
pub const PERIOD_S: u32 = 10;
pub const TIMEOUT_S: u32 = 1;
pub const SUCCESS_THRESHOLD: u32 = 1;
pub const FAILURE_THRESHOLD: u32 = 3;

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Handler {
    /// A command run in the container (as `pod exec`); success is exit code 0.
    Exec { command: Vec<String> },
    /// A GET; success is a status of 200–399. HTTPS is not verified (as kubelet's).
    Http {
        https: bool,
        /// None: the pod's IP.
        host: Option<String>,
        path: String,
        port: u16,
        headers: Vec<(String, String)>,
    },
    /// A TCP connection that opens.
    Tcp { host: Option<String>, port: u16 },
    /// grpc.health.v1.Health/Check answering SERVING.
    Grpc { port: u16, service: String },
}

/// A probe's run of results, and what they add up to (kubelet's thresholds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    successes: u32,
    failures: u32,
}

/// What a probe's results say now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `successThreshold` successes in a row.
    Passed,
    /// `failureThreshold` failures in a row.
    Failed,
    /// Neither yet.
    Undecided,
}

impl Tally {
    /// Count one result; the verdict once a threshold is reached (a threshold reached again
    /// says it again).
    pub fn record(&mut self, ok: bool, p: &Probe) -> Verdict {
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if self.successes >= p.success_threshold {
                return Verdict::Passed;
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.failures >= p.failure_threshold {
                return Verdict::Failed;
            }
        }
        Verdict::Undecided
    }

    /// Start over (after the container restarts, or a kill the probe caused).
    pub fn reset(&mut self) {
        *self = Tally::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(success: u32, failure: u32) -> Probe {
        Probe {
            handler: Handler::Tcp {
                host: None,
                port: 80,
            },
            initial_delay_s: 0,
            period_s: PERIOD_S,
            timeout_s: TIMEOUT_S,
            success_threshold: success,
            failure_threshold: failure,
            termination_grace_s: None,
        }
    }

    #[test]
    fn thresholds_count_results_in_a_row() {
        let p = probe(2, 3);
        let mut t = Tally::default();
        assert_eq!(t.record(true, &p), Verdict::Undecided);
        assert_eq!(
            t.record(false, &p),
            Verdict::Undecided,
            "a failure breaks the run"
        );
        assert_eq!(t.record(true, &p), Verdict::Undecided);
        assert_eq!(t.record(true, &p), Verdict::Passed);
        assert_eq!(t.record(true, &p), Verdict::Passed, "stays passed");
        assert_eq!(t.record(false, &p), Verdict::Undecided);
        assert_eq!(t.record(false, &p), Verdict::Undecided);
        assert_eq!(t.record(false, &p), Verdict::Failed);
        t.reset();
        assert_eq!(t.record(false, &p), Verdict::Undecided, "reset starts over");
        let mut t = Tally::default();
        assert_eq!(t.record(true, &probe(1, 1)), Verdict::Passed);
        assert_eq!(t.record(false, &probe(1, 1)), Verdict::Failed);
    }
}
