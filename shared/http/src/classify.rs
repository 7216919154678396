//! One `Transient | Permanent` classification for every cloud call.

use snapwatch_core::ports::SinkError;
use std::time::Duration;

/// A boxed cause, kept so logs and rejects can print the whole chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a failed call tells its caller to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Throttling, timeouts, 5xx, connection failures: a later attempt may succeed.
    Transient,
    /// Refused or malformed: the same request will never succeed.
    Permanent,
}

/// A failure that knows its [`Class`], and whether the server asked for a pause.
pub trait Classify {
    /// Transient or permanent.
    fn class(&self) -> Class;
    /// The pause the server asked for (HTTP `Retry-After`), if any.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// The class of an HTTP error status: 408, 429 and 5xx are transient, everything else permanent.
pub fn status_class(status: u16) -> Class {
    match status {
        408 | 429 | 500..=599 => Class::Transient,
        _ => Class::Permanent,
    }
}

/// `Retry-After` in its delay-seconds form (the form Slack and the cloud APIs send); an
/// HTTP-date or garbage is `None`.
pub fn retry_after_secs(header: Option<&str>) -> Option<u64> {
    header.and_then(|value| value.trim().parse::<u64>().ok())
}

/// A classified failure that keeps its cause (`#[source]`), for clients without their own enum.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// Transient or permanent.
    pub class: Class,
    /// What failed, without secrets (no URLs with credentials, no tokens).
    pub message: String,
    /// The pause the server asked for.
    pub retry_after: Option<Duration>,
    /// The underlying error.
    #[source]
    pub source: Option<BoxError>,
}

impl Failure {
    /// A failure a later attempt may not repeat.
    pub fn transient(message: impl Into<String>) -> Self {
        Failure {
            class: Class::Transient,
            message: message.into(),
            retry_after: None,
            source: None,
        }
    }

    /// A failure that retrying cannot fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Failure {
            class: Class::Permanent,
            message: message.into(),
            retry_after: None,
            source: None,
        }
    }

    /// Keeps `source` as the cause.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Records the server's requested pause.
    pub fn with_retry_after(mut self, pause: Duration) -> Self {
        self.retry_after = Some(pause);
        self
    }
}

impl Classify for Failure {
    fn class(&self) -> Class {
        self.class
    }
    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

/// An error and its causes on one line, `outer: cause: root`: what logs and rejects print. Error
/// types keep their cause as `#[source]` and leave it out of their own message, so nothing is
/// printed twice.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Class {
    /// The core's [`SinkError`] for a delivery that failed this way: the one mapping every sink
    /// (Slack, SNS, Security Hub) uses, so a transient failure is always retried later.
    pub fn sink_error(
        self,
        sink: &'static str,
        message: String,
        retry_after: Option<Duration>,
    ) -> SinkError {
        match self {
            Class::Transient => SinkError::Retryable {
                sink,
                message,
                retry_after_secs: retry_after.map(|pause| pause.as_secs()),
            },
            Class::Permanent => SinkError::Permanent { sink, message },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_timeouts_and_server_errors_are_transient() {
        for status in [408, 429, 500, 502, 503, 504, 599] {
            assert_eq!(status_class(status), Class::Transient, "{status}");
        }
        for status in [400, 401, 403, 404, 409, 412, 413] {
            assert_eq!(status_class(status), Class::Permanent, "{status}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_only() {
        assert_eq!(retry_after_secs(Some(" 30 ")), Some(30));
        assert_eq!(
            retry_after_secs(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(retry_after_secs(None), None);
    }

    #[test]
    fn a_sink_error_is_retryable_exactly_when_the_failure_is_transient() {
        let pause = Some(Duration::from_secs(7));
        match Class::Transient.sink_error("slack", "503".into(), pause) {
            SinkError::Retryable {
                retry_after_secs, ..
            } => assert_eq!(retry_after_secs, Some(7)),
            other => panic!("{other:?}"),
        }
        let permanent = Class::Permanent.sink_error("sns", "denied".into(), pause);
        assert!(!permanent.is_retryable(), "{permanent:?}");
    }

    #[test]
    fn the_chain_prints_each_cause_once() {
        let cause = std::io::Error::other("connection reset");
        let failure = Failure::transient("post failed").with_source(cause);
        assert_eq!(error_chain(&failure), "post failed: connection reset");
    }

    #[test]
    fn a_failure_keeps_its_cause() {
        let cause = std::io::Error::other("connection reset");
        let failure = Failure::transient("post failed").with_source(cause);
        let source = std::error::Error::source(&failure).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("connection reset"));
    }
}
