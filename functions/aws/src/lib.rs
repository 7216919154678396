//! snapwatch on AWS Lambda: EventBridge delivers CloudTrail management events, the core links
//! them into chains kept in DynamoDB, and findings go to SNS and Slack.
//!
//! `main` builds an [`handler::App`] once; each invocation is [`handler::App::handle`]. The
//! archive function ([`archive`]) reads the CloudTrail log files of an S3 bucket through SQS and
//! shares the same core path, [`handler::App::detect`].

pub mod alerts;
pub mod archive;
pub mod baseline;
pub mod clients;
pub mod dead_letter;
pub mod dynamo;
pub mod handler;
pub mod responder;
pub mod securityhub;
pub mod settings;
pub mod sns;
