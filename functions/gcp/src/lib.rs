//! snapwatch on Google Cloud Run: Eventarc delivers Cloud Audit Log entries as CloudEvents, the
//! core detector links them into chains kept in Firestore, and findings go to Slack.
//!
//! [`service::app`] builds the HTTP router (testable without a port); [`firestore`] is the
//! state store; [`settings`] the typed environment configuration `main` reads once;
//! [`baseline`] the scheduled listing of snapshots and images (`POST /baseline`); [`respond`] the
//! opt-in response's Compute Engine writes (remove added IAM members, disable a firewall rule).

pub mod baseline;
pub mod firestore;
pub mod rejects;
pub mod respond;
pub mod service;
pub mod settings;
