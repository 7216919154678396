//! Why a listing failed, classified once for the retry driver and the callers.

use snapwatch_http::{Class, Classify, Failure, Stop};
use std::time::Duration;

/// A failed listing. [`InventoryError::is_retryable`] says whether the next run may succeed.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// No bearer token for Resource Manager.
    #[error("no token for Resource Manager")]
    Token(#[source] Failure),
    /// The request did not get an answer (connection, timeout).
    #[error("{what}: request failed")]
    Network {
        /// The request, without query or tokens.
        what: String,
        /// The transport failure.
        #[source]
        source: reqwest::Error,
    },
    /// Resource Manager answered with an error status.
    #[error("{what}: {status} {code}: {message}")]
    Status {
        /// The request, without query or tokens.
        what: String,
        /// The HTTP status.
        status: u16,
        /// ARM's `error.code` (`AuthorizationFailed`, `TooManyRequests`…), or `-`.
        code: String,
        /// ARM's `error.message`, shortened.
        message: String,
        /// The pause ARM asked for (`Retry-After`).
        retry_after: Option<Duration>,
    },
    /// The answer is not a list page (`value` array, optional `nextLink`).
    #[error("{what}: not a list page: {reason}")]
    Page {
        /// The request, without query or tokens.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The subscription id cannot be put in a URL path.
    #[error("not a subscription id: {0:?}")]
    Subscription(String),
    /// Retries gave up; `last` is the final attempt's failure.
    #[error("{what}: {stop} after {attempts} attempt(s)")]
    GaveUp {
        /// The request, without query or tokens.
        what: String,
        /// Attempts made.
        attempts: u32,
        /// Why retrying stopped.
        stop: Stop,
        /// The last failure.
        #[source]
        last: Box<InventoryError>,
    },
}

impl InventoryError {
    /// Whether a later run may succeed (throttling, outages), as opposed to a refusal
    /// (no Reader role, unknown subscription) that needs a person.
    pub fn is_retryable(&self) -> bool {
        self.class() == Class::Transient
    }
}

impl Classify for InventoryError {
    fn class(&self) -> Class {
        match self {
            InventoryError::Token(failure) => failure.class,
            InventoryError::Network { .. } => Class::Transient,
            InventoryError::Status { status, .. } => snapwatch_http::status_class(*status),
            InventoryError::Page { .. } | InventoryError::Subscription(_) => Class::Permanent,
            InventoryError::GaveUp { last, .. } => last.class(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            InventoryError::Status { retry_after, .. } => *retry_after,
            InventoryError::Token(failure) => failure.retry_after,
            _ => None,
        }
    }
}
