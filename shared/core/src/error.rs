//! The error of the engine and of everything it drives (graph loading, the baseline): kept below
//! them all so that each can return it without importing the others.

use crate::ports::{StoreError, StoredFact};

/// Why an evaluation, an ingest or a baseline check failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored item is not what this version wrote: retrying cannot help.
    #[error("stored fact {key:?} under {resource:?} cannot be decoded")]
    CorruptFact {
        /// The resource the item is stored under.
        resource: String,
        /// The item's key.
        key: String,
        /// What the decoder said.
        #[source]
        source: serde_json::Error,
    },
    /// A fact (or baseline record) could not be encoded for the store.
    #[error("fact of event {event_id:?} cannot be encoded")]
    Encode {
        /// The event (or baseline record) it belongs to.
        event_id: String,
        /// What the encoder said.
        #[source]
        source: serde_json::Error,
    },
}

impl EngineError {
    /// Whether retrying the whole invocation may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::Store(e) => e.is_retryable(),
            EngineError::CorruptFact { .. } | EngineError::Encode { .. } => false,
        }
    }
}

/// Decodes an item stored under `resource`: a chain observation or a baseline record.
pub(crate) fn decode_stored<T: serde::de::DeserializeOwned>(
    resource: &str,
    stored: &StoredFact,
) -> Result<T, EngineError> {
    serde_json::from_str(&stored.body).map_err(|source| EngineError::CorruptFact {
        resource: resource.to_string(),
        key: stored.key.clone(),
        source,
    })
}
