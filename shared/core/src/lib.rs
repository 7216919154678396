//! snapwatch core: detects cloud snapshot abuse (ATT&CK T1578.001) as chains of events.
//!
//! raw record → [`parse`] → [`model::Fact`]s → [`engine`] (through the [`ports::StateStore`])
//! → [`model::Finding`]s → [`render`] / [`ports::AlertSink`].
//!
//! This crate has no async runtime, cloud SDK or HTTP framework dependency.

#![deny(missing_docs)]

// documented by the rules/settings change
#[allow(missing_docs)]
pub mod baseline;
pub mod config;
// documented by the rules/settings change
#[allow(missing_docs)]
pub mod engine;
pub mod memory;
pub mod model;
pub mod parse;
pub mod ports;
pub mod render;
pub mod render_html;
// documented by the rules/settings change
#[allow(missing_docs)]
pub mod rules;

pub use config::Config;
pub use model::*;
