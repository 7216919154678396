//! The opt-in response's AWS executor, built once at start when some rule's mode is not `off`:
//! the signed EC2/RDS Query-API client of `snapwatch-aws-inventory` (no EC2 or RDS SDK crate),
//! acting only in the function's own account.

use snapwatch_aws_inventory::{AwsResponder, InventoryError, QueryClient, SnapshotLister};

/// Why the responder could not be built at start.
#[derive(Debug, thiserror::Error)]
pub enum ResponderInitError {
    /// The Lambda environment gave no credentials provider.
    #[error("no AWS credentials provider: the Lambda environment provides one")]
    NoCredentials,
    /// The Lambda environment gave no region.
    #[error("no AWS region: the Lambda environment sets AWS_REGION")]
    NoRegion,
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Http(#[from] reqwest::Error),
    /// The function's own account could not be read (`sts:GetCallerIdentity`).
    #[error("cannot read the function's own account")]
    Account(#[from] InventoryError),
}

/// The responder over the SDK config's credentials, in the account those credentials belong to.
pub async fn aws_responder(
    sdk: &aws_config::SdkConfig,
) -> Result<AwsResponder, ResponderInitError> {
    let credentials = sdk
        .credentials_provider()
        .ok_or(ResponderInitError::NoCredentials)?;
    let region = sdk
        .region()
        .ok_or(ResponderInitError::NoRegion)?
        .to_string();
    let client = QueryClient::new(
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?,
        credentials,
        None,
    );
    let account = SnapshotLister::new(client.clone())
        .account_id(&region)
        .await?;
    Ok(AwsResponder::new(client, account))
}
