//! snapwatch on Azure Functions: a custom handler (an HTTP server the Functions host calls) that
//! runs the core detector over Activity Log records from Event Hubs and resource events from
//! Event Grid, keeps chain state in Table Storage and alerts to Slack.
//!
//! - [`handler`]: `app(state) -> Router`, decode → core → encode for both triggers;
//! - [`table`]: the Table Storage [`snapwatch_core::ports::StateStore`] over the REST API;
//! - [`baseline`]: the `Baseline` timer: the scheduled listing of disks, snapshots and galleries;
//! - [`arm`]: the narrow port that reads a resource from Azure Resource Manager when a record
//!   lacks what the chain needs;
//! - [`identity`]: managed identity tokens from the Functions identity endpoint;
//! - [`respond`]: the opt-in response's Resource Manager writes (end a SAS, delete an NSG rule);
//! - [`settings`]: the typed settings `main` reads once from the environment.

pub mod arm;
pub mod baseline;
pub mod handler;
pub mod identity;
pub mod respond;
pub mod settings;
pub mod table;
