//! snapwatch core: detects cloud snapshot abuse (ATT&CK T1578.001) as chains of events.
//!
//! raw record → [`parse`] → [`model::Fact`]s → [`engine`] (through the [`ports::StateStore`])
//! → [`model::Finding`]s → [`render`] / [`ports::AlertSink`].
//!
//! Inside the engine, [`graph`] loads the chains, each rule in [`rules`] decides on them, and
//! [`finding`] assembles what fired. The [`baseline`] drives the engine with a listing of the
//! account ([`inventory`]). Dependencies run one way: baseline → engine → finding → rules → graph
//! → model, with [`error`] below them all.
//!
//! With a response mode set, [`response`] plans the undo of what a finding's chain added and
//! the engine hands it to a [`ports::Responder`] before delivery.
//!
//! [`split`] cuts a stream of log text into those raw records, for every reader.
//!
//! This crate has no async runtime, cloud SDK or HTTP framework dependency.

#![deny(missing_docs)]

pub mod baseline;
pub mod config;
pub mod engine;
pub mod error;
pub mod finding;
pub mod graph;
pub mod inventory;
pub mod memory;
pub mod model;
pub mod parse;
pub mod ports;
pub mod render;
pub mod render_html;
pub mod response;
pub mod rules;
pub mod split;

pub use config::Config;
pub use model::*;
