//! Errors of the image store, the registry client and the layer extractor.

/// What can go wrong with images.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("image {0:?} is not in the store")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{step}: {err}")]
    Io { step: String, err: std::io::Error },
    /// Content that does not match its digest (or size).
    #[error("{what}: digest mismatch: expected {expected}, got {got}")]
    Digest {
        what: String,
        expected: String,
        got: String,
    },
    /// A registry answered with an error.
    #[error("registry {registry}: {msg}")]
    Registry { registry: String, msg: String },
    /// A layer entry that is malformed or would escape its snapshot.
    #[error("layer {layer}: entry {entry:?}: {msg}")]
    Layer {
        layer: String,
        entry: String,
        msg: String,
    },
    #[error(transparent)]
    Sys(#[from] crate::linux::SysError),
}

/// Result of an image operation.
pub type Result<T> = std::result::Result<T, Error>;
