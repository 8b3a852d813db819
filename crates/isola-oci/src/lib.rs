//! isola's image side: references, the OCI image-layout store, import, safe layer unpacking,
//! the unpacked-rootfs cache, and the conversion of an image config into a runtime bundle.

pub mod archive_kind;
pub mod bundle;
pub mod digest;
pub mod import;
pub mod lock;
pub mod overlay;
pub mod reference;
pub mod registry;
pub mod rootfs;
pub mod seccomp_profile;
pub mod store;
pub mod unpack;
pub mod users;

use std::path::{Path, PathBuf};

pub use digest::Digest;
pub use reference::Reference;
pub use store::{Image, Store};

/// What can go wrong with the image store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The message carries the I/O error; it is not also the `source()`, so a chain printed
    /// with `{:#}` says it once.
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{}: content hashes to {actual}, expected {expected}", path.display())]
    Corrupt {
        path: PathBuf,
        expected: Digest,
        actual: Digest,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("no such image: {0}")]
    NotFound(String),
    #[error(transparent)]
    Unpack(#[from] unpack::UnpackError),
}

impl StoreError {
    pub fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_path_buf(),
            cause: source,
        }
    }
}
