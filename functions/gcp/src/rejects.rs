//! Where events that cannot be parsed are kept: acknowledged to Eventarc (retrying a malformed
//! event never fixes it) but never dropped silently.

use chrono::{DateTime, Utc};
use snapwatch_core::ports::StoreError;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// One event the service could not use, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedEvent {
    /// The CloudEvent id (`ce-id` or the structured `id`); `None` when the request had none.
    pub event_id: Option<String>,
    /// Why the event could not be used.
    pub reason: String,
    /// The request's `Content-Type`, as sent.
    pub content_type: String,
    /// The request body as received (lossy UTF-8 for binary garbage).
    pub body: String,
    /// When the service received it.
    pub received_at: DateTime<Utc>,
}

/// Keeps rejected events for a person to look at.
pub trait RejectStore: Send + Sync {
    /// Stores `rejected`; a redelivery of the same event may be stored once or twice, never lost.
    fn keep(&self, rejected: &RejectedEvent)
        -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// In-process rejects, for tests. Clones share what was kept.
#[derive(Debug, Default, Clone)]
pub struct MemoryRejects {
    kept: Arc<Mutex<Vec<RejectedEvent>>>,
}

impl MemoryRejects {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything kept so far.
    pub fn kept(&self) -> Vec<RejectedEvent> {
        self.kept.lock().map(|k| k.clone()).unwrap_or_default()
    }
}

impl RejectStore for MemoryRejects {
    async fn keep(&self, rejected: &RejectedEvent) -> Result<(), StoreError> {
        self.kept
            .lock()
            .map_err(|_| StoreError::permanent("rejects mutex poisoned"))?
            .push(rejected.clone());
        Ok(())
    }
}
