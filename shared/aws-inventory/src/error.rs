//! What can go wrong while listing, sorted by what the caller should do about it.

use aws_credential_types::provider::error::CredentialsError;

/// A boxed transport error, kept as the source so nothing is flattened into a string.
pub type TransportError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The API kept throttling until the retry budget ran out; a later run will likely succeed.
    #[error("{action} in {region} was still throttled ({code}) after {attempts} attempts")]
    Throttled {
        action: String,
        region: String,
        code: String,
        attempts: u32,
    },
    /// Network failure, timeout or a server-side (5xx) error that outlasted the retries.
    #[error("{action} in {region} failed after {attempts} attempts: {reason}")]
    Unavailable {
        action: String,
        region: String,
        reason: String,
        attempts: u32,
        #[source]
        source: Option<TransportError>,
    },
    /// The credentials may not make this call (missing IAM permission, SCP, expired or invalid
    /// credentials, region not enabled): fix the role, retrying will not help.
    #[error("{action} was denied ({code}): {message}")]
    Denied {
        action: String,
        code: String,
        message: String,
    },
    /// Any other error document the API returned.
    #[error("{action} failed with HTTP {status} {code}: {message}")]
    Api {
        action: String,
        status: u16,
        code: String,
        message: String,
    },
    /// The response was not the XML this crate expects for the action.
    #[error("{action} returned a response that cannot be read: {reason}")]
    Malformed { action: String, reason: String },
    /// The credentials provider could not supply credentials.
    #[error("no AWS credentials")]
    Credentials(#[source] CredentialsError),
    /// The request could not be signed with the credentials at hand.
    #[error("cannot sign {action}")]
    Signing {
        action: String,
        #[source]
        source: TransportError,
    },
    /// The endpoint or region would not make a valid URL.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
}

impl InventoryError {
    /// True when the same call may succeed later without anyone changing anything: throttling,
    /// outages, and a credentials provider that timed out.
    pub fn is_retryable(&self) -> bool {
        match self {
            InventoryError::Throttled { .. } | InventoryError::Unavailable { .. } => true,
            InventoryError::Credentials(source) => {
                matches!(source, CredentialsError::ProviderTimedOut(_))
            }
            InventoryError::Denied { .. }
            | InventoryError::Api { .. }
            | InventoryError::Malformed { .. }
            | InventoryError::Signing { .. }
            | InventoryError::InvalidEndpoint { .. } => false,
        }
    }

    /// True when the API says the resource does not exist (any more): a snapshot deleted between
    /// the list call and its attribute call.
    pub fn is_not_found(&self) -> bool {
        match self {
            InventoryError::Api { code, .. } => is_not_found_code(code),
            _ => false,
        }
    }

    pub(crate) fn malformed(action: &str, reason: impl Into<String>) -> Self {
        InventoryError::Malformed {
            action: action.to_string(),
            reason: reason.into(),
        }
    }
}

impl snapwatch_http::Classify for InventoryError {
    fn class(&self) -> snapwatch_http::Class {
        if self.is_retryable() {
            snapwatch_http::Class::Transient
        } else {
            snapwatch_http::Class::Permanent
        }
    }
}

pub(crate) use crate::classify::{classify_code, CodeClass};

fn is_not_found_code(code: &str) -> bool {
    matches!(
        code,
        "InvalidSnapshot.NotFound"
            | "InvalidAMIID.NotFound"
            | "InvalidAMIID.Unavailable"
            | "DBSnapshotNotFound"
            | "DBSnapshotNotFoundFault"
            | "DBClusterSnapshotNotFoundFault"
            | "DBClusterSnapshotNotFound"
            | "InvalidSecurityGroupRuleId.NotFound"
            | "InvalidGroup.NotFound"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: &str) -> InventoryError {
        InventoryError::Api {
            action: "DescribeSnapshotAttribute".into(),
            status: 400,
            code: code.into(),
            message: String::new(),
        }
    }

    #[test]
    fn codes_are_classified_for_the_retry_loop() {
        assert_eq!(classify_code("RequestLimitExceeded"), CodeClass::Throttling);
        assert_eq!(classify_code("Throttling"), CodeClass::Throttling);
        assert_eq!(classify_code("ThrottlingException"), CodeClass::Throttling);
        assert_eq!(classify_code("InternalError"), CodeClass::ServerFault);
        assert_eq!(classify_code("Unavailable"), CodeClass::ServerFault);
        assert_eq!(classify_code("UnauthorizedOperation"), CodeClass::Denied);
        assert_eq!(classify_code("AccessDenied"), CodeClass::Denied);
        assert_eq!(classify_code("AuthFailure"), CodeClass::Denied);
        assert_eq!(classify_code("InvalidSnapshot.NotFound"), CodeClass::Other);
        assert_eq!(classify_code("InvalidParameterValue"), CodeClass::Other);
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        let throttled = InventoryError::Throttled {
            action: "DescribeSnapshots".into(),
            region: "eu-west-1".into(),
            code: "RequestLimitExceeded".into(),
            attempts: 6,
        };
        let unavailable = InventoryError::Unavailable {
            action: "DescribeSnapshots".into(),
            region: "eu-west-1".into(),
            reason: "HTTP 503".into(),
            attempts: 6,
            source: None,
        };
        let denied = InventoryError::Denied {
            action: "DescribeSnapshots".into(),
            code: "UnauthorizedOperation".into(),
            message: "not authorized".into(),
        };
        assert!(throttled.is_retryable());
        assert!(unavailable.is_retryable());
        assert!(!denied.is_retryable());
        assert!(!api("InvalidParameterValue").is_retryable());
        assert!(!InventoryError::malformed("DescribeImages", "not XML").is_retryable());
        assert!(
            InventoryError::Credentials(CredentialsError::provider_timed_out(
                std::time::Duration::from_secs(5)
            ))
            .is_retryable()
        );
        assert!(
            !InventoryError::Credentials(CredentialsError::not_loaded("no profile")).is_retryable()
        );
    }

    #[test]
    fn vanished_resources_are_recognised() {
        assert!(api("InvalidSnapshot.NotFound").is_not_found());
        assert!(api("InvalidAMIID.NotFound").is_not_found());
        assert!(api("DBSnapshotNotFound").is_not_found());
        assert!(api("DBClusterSnapshotNotFoundFault").is_not_found());
        assert!(!api("InvalidParameterValue").is_not_found());
        assert!(!InventoryError::malformed("x", "y").is_not_found());
    }
}
