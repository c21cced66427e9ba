//! Errors of the OCI runtime layer. Messages follow runc's wording where clients (podman,
//! containerd) match on them: "does not exist", "container not running".

use crate::linux::SysError;
use crate::oci::spec::SpecError;
use crate::oci::state::Status;

/// What can go wrong in an OCI runtime operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("container {0:?} already exists")]
    AlreadyExists(String),
    #[error(
        "invalid container id {0:?}: use letters, digits, '_', '-', '+', '.', not starting with '.', at most 1024 bytes"
    )]
    InvalidId(String),
    /// A bad config.json or process.json field.
    #[error("{}", spec_text(file, err))]
    Spec { file: String, err: SpecError },
    #[error(transparent)]
    Sys(#[from] SysError),
    /// The container is in a state that does not allow the operation.
    #[error("container {id:?} is {status}: {what}")]
    State {
        id: String,
        status: Status,
        what: &'static str,
    },
    /// The container's init failed during setup; the text names the step.
    #[error("{0}")]
    Init(String),
    /// A request that cannot be carried out as given.
    #[error("{0}")]
    Invalid(String),
    /// State on disk that berth cannot read.
    #[error("state of container {id:?}: {msg}")]
    Corrupt { id: String, msg: String },
}

/// `file: field: message`, without naming the file twice when the whole file is at fault.
fn spec_text(file: &str, err: &SpecError) -> String {
    if err.field == file {
        format!("{file}: {}", err.message)
    } else {
        format!("{file}: {err}")
    }
}

impl Error {
    /// A config.json problem.
    pub fn config(err: SpecError) -> Self {
        Error::Spec {
            file: "config.json".into(),
            err,
        }
    }
}

/// Result of an OCI runtime operation.
pub type Result<T> = std::result::Result<T, Error>;
