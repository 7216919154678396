//! snapwatch on AWS Lambda: EventBridge delivers CloudTrail management events, the core links
//! them into chains kept in DynamoDB, and findings go to SNS and Slack.
//!
//! `main` builds an [`handler::App`] once; each invocation is [`handler::App::handle`].

pub mod alerts;
pub mod baseline;
pub mod clients;
pub mod dead_letter;
pub mod dynamo;
pub mod handler;
pub mod responder;
pub mod securityhub;
pub mod settings;
pub mod sns;
