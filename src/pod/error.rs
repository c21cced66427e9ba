//! Errors of pods: each names the pod, container or file it is about.

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
    #[error("{0}")]
    Invalid(String),
    #[error("{step}: {err}")]
    Io { step: String, err: std::io::Error },
    #[error("CNI: {0}")]
    Cni(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error(transparent)]
    Image(#[from] crate::image::Error),
    #[error(transparent)]
    Oci(#[from] crate::oci::Error),
    #[error(transparent)]
    Sys(#[from] crate::linux::SysError),
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
