//! What can go wrong while listing, sorted by what the caller should do about it.

use snapwatch_http::{Class, Failure};

/// A listing that could not complete.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// A request failed for good or outlasted its retries.
    #[error("{what} failed after {attempts} attempt(s)")]
    Request {
        /// The call, e.g. `list global/snapshots`.
        what: String,
        /// Attempts made.
        attempts: u32,
        /// Whether a later run may succeed.
        class: Class,
        /// The last failure.
        #[source]
        source: Failure,
    },
    /// An answer was not the shape the REST reference documents, or named something that is
    /// not a listed resource.
    #[error("{what}: unexpected answer: {reason}")]
    Malformed {
        /// The call or resource.
        what: String,
        /// Why it cannot be read.
        reason: String,
    },
    /// A location could not be listed (`unreachables`): a partial listing would be misread.
    #[error("{what}: {location} could not be listed")]
    Unreachable {
        /// The call.
        what: String,
        /// The location Compute Engine named.
        location: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl InventoryError {
    /// True when a later run may succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            InventoryError::Request { class, .. } => *class == Class::Transient,
            InventoryError::Unreachable { .. } => true,
            InventoryError::Malformed { .. } | InventoryError::Client(_) => false,
        }
    }
}
