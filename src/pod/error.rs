//! Errors of pods: each names the pod, container or file it is about, and says whether the
//! caller's input was at fault ([`Error::kind`]), so that the CRI answers InvalidArgument only
//! for bad input and Internal for berth's own failures.

use serde::{Deserialize, Serialize};

/// What can go wrong with pods.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A manifest field that is malformed or unsupported (`spec.containers[1].lifecycle: not supported`).
    #[error("manifest: {0}")]
    Manifest(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The object is not in a state that allows the operation.
    #[error("{0}")]
    Precondition(String),
    /// The caller's input cannot be carried out as given.
    #[error("{0}")]
    Invalid(String),
    /// berth itself failed (a monitor that did not start, a record it cannot read).
    #[error("{0}")]
    Internal(String),
    #[error("{step}: {err}")]
    Io { step: String, err: std::io::Error },
    #[error("CNI: {0}")]
    Cni(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error(transparent)]
    Image(#[from] crate::image::Error),
    #[error(transparent)]
    Volume(#[from] crate::volume::Error),
    #[error(transparent)]
    Oci(#[from] crate::oci::Error),
    #[error(transparent)]
    Sys(#[from] crate::linux::SysError),
    /// An error whose rollback failed too: what could not be released is named.
    #[error("{}", crate::undo::describe(error, failed))]
    Rollback {
        error: Box<Error>,
        failed: Vec<String>,
    },
}

/// The kind of an error, as it crosses process boundaries (the pod monitor's answers) and
/// becomes a gRPC code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    Precondition,
    /// The caller's input.
    Invalid,
    Timeout,
    /// berth's own failure (what an old monitor's kindless error reads as).
    #[default]
    Internal,
}

impl Error {
    /// Did writing to a reader that went away fail (`berth pod logs | head`)?
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { err, .. } if err.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        use crate::oci::Error as O;
        match self {
            Error::NotFound(_)
            | Error::Image(crate::image::Error::NotFound(_))
            | Error::Volume(crate::volume::Error::NotFound(_)) => ErrorKind::NotFound,
            Error::Oci(O::NotFound(_)) => ErrorKind::NotFound,
            Error::AlreadyExists(_) | Error::Oci(O::AlreadyExists(_)) => ErrorKind::AlreadyExists,
            Error::Precondition(_)
            | Error::Oci(O::State { .. })
            | Error::Volume(crate::volume::Error::Precondition(_)) => ErrorKind::Precondition,
            Error::Invalid(_)
            | Error::Manifest(_)
            | Error::Image(crate::image::Error::Invalid(_))
            | Error::Volume(crate::volume::Error::Invalid(_))
            | Error::Oci(O::Spec { .. } | O::InvalidId(_) | O::Invalid(_)) => ErrorKind::Invalid,
            Error::Timeout(_) => ErrorKind::Timeout,
            Error::Rollback { error, .. } => error.kind(),
            _ => ErrorKind::Internal,
        }
    }

    /// An error of `kind` with `message` (the other side of a process boundary).
    pub fn of_kind(kind: ErrorKind, message: String) -> Error {
        match kind {
            ErrorKind::NotFound => Error::NotFound(message),
            ErrorKind::AlreadyExists => Error::AlreadyExists(message),
            ErrorKind::Precondition => Error::Precondition(message),
            ErrorKind::Invalid => Error::Invalid(message),
            ErrorKind::Timeout => Error::Timeout(message),
            ErrorKind::Internal => Error::Internal(message),
        }
    }

    /// The text that, with [`Error::kind`], makes this error again through
    /// [`Error::of_kind`] (NotFound and AlreadyExists add their own words).
    pub fn message(&self) -> String {
        match self {
            Error::NotFound(m) | Error::AlreadyExists(m) => m.clone(),
            other => other.to_string(),
        }
    }

    /// `self`, or `self` with the steps its rollback could not undo.
    pub fn with_rollback(self, failed: Vec<String>) -> Error {
        if failed.is_empty() {
            self
        } else {
            Error::Rollback {
                error: Box::new(self),
                failed,
            }
        }
    }
}

/// Result of a pod operation.
pub type Result<T> = std::result::Result<T, Error>;

/// `map_err` helper: an I/O error with the step that failed.
pub(crate) fn io(step: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let step = step.into();
    move |err| Error::Io { step, err }
}

/// `map_err` helper for nix errors.
pub(crate) fn sys(step: impl Into<String>) -> impl FnOnce(nix::errno::Errno) -> Error {
    let step = step.into();
    move |e| Error::Io {
        step,
        err: e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_survive_the_trip_and_rollbacks_keep_the_kind() {
        for k in [
            ErrorKind::NotFound,
            ErrorKind::AlreadyExists,
            ErrorKind::Precondition,
            ErrorKind::Invalid,
            ErrorKind::Timeout,
            ErrorKind::Internal,
        ] {
            assert_eq!(Error::of_kind(k, "x".into()).kind(), k);
        }
        let e = Error::Invalid("bad".into()).with_rollback(vec!["umount /x: busy".into()]);
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert_eq!(
            e.to_string(),
            "bad (and the rollback failed: umount /x: busy)"
        );
        // a monitor of an older berth sends no kind: internal
        let k: ErrorKind = serde_json::from_str("\"internal\"").unwrap();
        assert_eq!(k, ErrorKind::default());
    }
}
