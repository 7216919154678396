//! One AWS error classifier for every AWS call snapwatch makes (the SDK clients of the Lambda
//! and the calls this crate and the Security Hub sink sign themselves): the SDK's own
//! throttling and transient code lists, a few service codes those lists lack, and the HTTP
//! status rules, in one place.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use snapwatch_http::{status_class, Class};

/// The AWS SDK's throttling and transient error codes, as its own retry classifier uses them.
pub use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};

/// Throttling codes of services snapwatch calls that the SDK's generic list lacks: SNS
/// (`Throttled`, and the KMS throttling of encrypted topics) and SQS (`KmsThrottled`).
const SERVICE_THROTTLING: &[&str] = &[
    "Throttled",
    "KMSThrottling",
    "KMSThrottlingException",
    "KmsThrottled",
];

/// Server-side faults and contention. The SDK retries most of these by their 5xx status; they
/// are listed because some answers carry the code without that status (a Security Hub
/// `FailedFindings` entry in a 200, a Query-API error document behind a proxy).
const SERVER_FAULTS: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
    "IDPCommunicationError",
    // DynamoDB: a concurrent transaction touched the item; the same request may succeed.
    "TransactionConflictException",
];

/// The credentials may not make the call: fixing the role helps, retrying does not.
const DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnauthorizedAccess",
    "AuthFailure",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "UnrecognizedClientException",
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "OptInRequired",
    "Blocked",
    "InvalidToken",
];

/// What an AWS error code says about retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeClass {
    /// Slow down and try again.
    Throttling,
    /// A server-side fault or timeout: try again.
    ServerFault,
    /// Not allowed: retrying will not help.
    Denied,
    /// Any other code: decided by the HTTP status.
    Other,
}

/// The class of an AWS error code. Qualified codes (`…#ThrottlingException`,
/// `ThrottlingException:http://…`, as JSON protocols send them) are read bare.
pub fn classify_code(code: &str) -> CodeClass {
    let bare = code.rsplit('#').next().unwrap_or(code);
    let bare = bare.split(':').next().unwrap_or(bare);
    if THROTTLING_ERRORS.contains(&bare) || SERVICE_THROTTLING.contains(&bare) {
        CodeClass::Throttling
    } else if TRANSIENT_ERRORS.contains(&bare) || SERVER_FAULTS.contains(&bare) {
        CodeClass::ServerFault
    } else if DENIED.contains(&bare) {
        CodeClass::Denied
    } else {
        CodeClass::Other
    }
}

/// Transient when the code throttles or is a server fault, or the status is 408, 429 or 5xx;
/// permanent otherwise (a denied code is permanent whatever the status).
pub fn class_of(code: Option<&str>, http_status: Option<u16>) -> Class {
    match code.map(classify_code) {
        Some(CodeClass::Throttling | CodeClass::ServerFault) => Class::Transient,
        Some(CodeClass::Denied) => Class::Permanent,
        Some(CodeClass::Other) | None => http_status.map_or(Class::Permanent, status_class),
    }
}

/// The class of an SDK client's failure: timeouts, dispatch and unreadable responses are
/// transient; a service error by its code and status; anything else (a request that could not
/// be built) permanent.
pub fn sdk_error_class<E>(err: &SdkError<E, HttpResponse>) -> Class
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Class::Transient
        }
        SdkError::ServiceError(service) => {
            class_of(err.code(), Some(service.raw().status().as_u16()))
        }
        _ => Class::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Codes the four hand-kept lists (DynamoDB store, SNS sink, dead-letter queue, inventory)
    /// disagreed on, and what each now is everywhere.
    #[test]
    fn codes_the_old_lists_disagreed_on_have_one_class() {
        let table: &[(&str, Class, &str)] = &[
            ("ThrottledException", Class::Transient, "SNS only"),
            (
                "RequestThrottled",
                Class::Transient,
                "SQS and inventory, not DynamoDB/SNS",
            ),
            ("KMSThrottlingException", Class::Transient, "SNS only"),
            ("KmsThrottled", Class::Transient, "SQS only"),
            (
                "TransactionConflictException",
                Class::Transient,
                "DynamoDB only",
            ),
            (
                "InternalServerError",
                Class::Transient,
                "DynamoDB and inventory, not SNS/SQS",
            ),
            (
                "LimitExceededException",
                Class::Transient,
                "DynamoDB and Security Hub",
            ),
            (
                "RequestTimeout",
                Class::Transient,
                "Security Hub and inventory",
            ),
            (
                "ServiceUnavailableException",
                Class::Transient,
                "Security Hub and inventory",
            ),
            ("SlowDown", Class::Transient, "inventory only"),
            (
                "TooManyRequestsException",
                Class::Transient,
                "Security Hub and inventory",
            ),
            (
                "ProvisionedThroughputExceededException",
                Class::Transient,
                "DynamoDB",
            ),
            ("AccessDeniedException", Class::Permanent, "everywhere"),
            ("ValidationException", Class::Permanent, "everywhere"),
            (
                "ConditionalCheckFailedException",
                Class::Permanent,
                "everywhere",
            ),
            ("InvalidParameterValue", Class::Permanent, "everywhere"),
        ];
        for (code, class, was) in table {
            assert_eq!(class_of(Some(code), Some(400)), *class, "{code} ({was})");
        }
    }

    #[test]
    fn the_sdk_lists_are_the_base() {
        for code in THROTTLING_ERRORS {
            assert_eq!(classify_code(code), CodeClass::Throttling, "{code}");
        }
        for code in TRANSIENT_ERRORS {
            assert_eq!(classify_code(code), CodeClass::ServerFault, "{code}");
        }
    }

    #[test]
    fn the_status_decides_unknown_codes_and_denials_stay_permanent() {
        assert_eq!(class_of(None, Some(503)), Class::Transient);
        assert_eq!(class_of(Some("Weird"), Some(500)), Class::Transient);
        assert_eq!(class_of(Some("Weird"), Some(429)), Class::Transient);
        assert_eq!(class_of(Some("Weird"), Some(400)), Class::Permanent);
        assert_eq!(class_of(None, None), Class::Permanent);
        assert_eq!(class_of(Some("AccessDenied"), Some(503)), Class::Permanent);
    }

    #[test]
    fn qualified_codes_are_read_bare() {
        assert_eq!(
            classify_code("com.amazonaws.securityhub#ThrottlingException"),
            CodeClass::Throttling
        );
        assert_eq!(
            classify_code("ThrottlingException:http://internal.amazon.com/coral/"),
            CodeClass::Throttling
        );
    }
}
