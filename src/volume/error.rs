//! Errors of volumes: bad input names its field's path; the rest name the failed step.

/// What can go wrong with volumes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input (`spec.capacity.storage: "10Gb" is not a quantity`).
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    /// Not possible in the object's state (in use, held by another pod, immutable).
    #[error("{0}")]
    Precondition(String),
    #[error("{step}: {err}")]
    Io { step: String, err: std::io::Error },
    /// A program berth runs (mkfs) or the kernel refused.
    #[error("{0}")]
    Failed(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// `map_err` helper naming the step.
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
