//! The AWS half of the snapshot baseline: list every EBS snapshot, manual RDS DB and DB cluster
//! snapshot and AMI an account owns in a region, with who may use each, as a
//! [`snapwatch_core::baseline::Inventory`].
//!
//! [`AwsResponder`] carries out the opt-in response (issue 13) with the same client: the
//! re-reads and the modify/revoke calls of the snapshot, image, DB snapshot and security-group
//! undo.
//!
//! The handful of EC2, RDS and STS Query-API calls are signed here with `aws-sigv4` and sent with
//! `reqwest`, instead of compiling `aws-sdk-ec2` / `aws-sdk-rds` (10–15 minutes each on the CI's
//! two cores). The caller supplies the credentials provider (the Lambda and the CLI get theirs
//! from `aws-config`); this crate depends on no SDK client.
//!
//! ```no_run
//! # async fn run(credentials: aws_credential_types::provider::SharedCredentialsProvider)
//! # -> Result<(), snapwatch_aws_inventory::InventoryError> {
//! use snapwatch_aws_inventory::{QueryClient, SnapshotLister};
//! let lister = SnapshotLister::new(QueryClient::new(reqwest::Client::new(), credentials, None));
//! let account = lister.account_id("eu-west-1").await?;
//! let inventory = lister.list_region(&account, "eu-west-1", chrono::Utc::now()).await?;
//! # Ok(()) }
//! ```

pub mod classify;
mod client;
mod error;
mod lister;
pub mod respond;
#[cfg(feature = "sdk")]
pub mod sdk;
pub mod signing;
mod xml;

pub use client::{QueryClient, RetryPolicy, Service};
pub use error::{InventoryError, TransportError};
pub use lister::{image_from_description, SnapshotLister};
pub use respond::AwsResponder;
