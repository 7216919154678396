//! Delivery of findings that leave together as one document (the HTML report): every finding is
//! claimed first, the document is written once, and only then are the claims settled, so no
//! finding counts as delivered before the whole document is out.

use super::{Delivery, Detector, EngineError, CLAIM_LEASE_SECS};
use crate::model::Finding;
use crate::ports::{Claim, SinkError, StateStore};
use chrono::{DateTime, Utc};

impl<S: StateStore> Detector<S> {
    /// Like [`Detector::deliver`], but `write` receives every finding this caller may deliver
    /// at once (possibly none: the document says so) and the claims are settled by its one
    /// result: all sent, all released for a retry, or all rejected. Claims are per `sink_name`,
    /// as with `deliver` through a sink of that name.
    pub async fn deliver_as_one<W>(
        &self,
        findings: &[Finding],
        sink_name: &'static str,
        write: W,
        now: DateTime<Utc>,
    ) -> Result<Delivery, EngineError>
    where
        W: FnOnce(&[&Finding]) -> Result<(), SinkError>,
    {
        let mut delivery = Delivery::default();
        let expires_at = now.timestamp() + self.config.window_secs();
        let mut won: Vec<(&Finding, String)> = Vec::new();
        for finding in findings {
            if finding.severity < self.config.alerts.min_severity {
                delivery.below_threshold += 1;
                continue;
            }
            let claim_id = format!("{}@{sink_name}", finding.id);
            match self
                .store
                .claim_alert(&claim_id, now, CLAIM_LEASE_SECS, expires_at)
                .await?
            {
                Claim::AlreadySent => delivery.already_sent += 1,
                Claim::HeldByOther => delivery.held_by_other += 1,
                Claim::Won => won.push((finding, claim_id)),
            }
        }
        let document: Vec<&Finding> = won.iter().map(|(finding, _)| *finding).collect();
        match write(&document) {
            Ok(()) => {
                for (finding, claim_id) in &won {
                    self.store.mark_alert_sent(claim_id).await?;
                    delivery.sent.push(finding.id.clone());
                }
            }
            Err(err) if err.is_retryable() => {
                tracing::warn!(sink = sink_name, findings = won.len(), error = %err, "document not delivered; findings released for retry");
                for (finding, claim_id) in &won {
                    self.store.release_alert(claim_id).await?;
                    delivery.retry.push((finding.id.clone(), same_error(&err)));
                }
            }
            Err(err) => {
                tracing::error!(sink = sink_name, findings = won.len(), error = %err, "document rejected by sink");
                for (finding, claim_id) in &won {
                    self.store.mark_alert_sent(claim_id).await?;
                    delivery
                        .rejected
                        .push((finding.id.clone(), same_error(&err)));
                }
            }
        }
        Ok(delivery)
    }
}

/// Each finding of a failed document carries the document's error.
fn same_error(err: &SinkError) -> SinkError {
    match err {
        SinkError::Retryable {
            sink,
            message,
            retry_after_secs,
        } => SinkError::Retryable {
            sink,
            message: message.clone(),
            retry_after_secs: *retry_after_secs,
        },
        SinkError::Permanent { sink, message } => SinkError::Permanent {
            sink,
            message: message.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::model::{Cloud, FoundBy, Severity};
    use crate::Config;
    use pollster::block_on;

    fn finding(id: &str, severity: Severity) -> Finding {
        let at: DateTime<Utc> = "2026-03-02T09:00:00Z".parse().expect("time");
        Finding {
            id: id.into(),
            rule: crate::model::Rule::SnapshotPublic,
            severity,
            cloud: Cloud::Aws,
            account: "111122223333".into(),
            region: None,
            snapshot: "snap-1".into(),
            resources: vec!["snap-1".into()],
            actors: vec![],
            techniques: vec![],
            events: vec![],
            first_seen: at,
            last_seen: at,
            title: "t".into(),
            summary: "s".into(),
            next_steps: vec![],
            found_by: FoundBy::Events,
            response: None,
        }
    }

    fn broken_pipe(_: &[&Finding]) -> Result<(), SinkError> {
        Err(SinkError::Retryable {
            sink: "stdout",
            message: "Broken pipe".into(),
            retry_after_secs: None,
        })
    }

    #[test]
    fn nothing_counts_as_delivered_until_the_document_is_written() {
        let detector = Detector::new(MemoryStore::new(), Config::default());
        let findings = [
            finding("a", Severity::High),
            finding("b", Severity::Critical),
        ];
        let now = findings[0].first_seen;

        let failed = block_on(detector.deliver_as_one(&findings, "stdout", broken_pipe, now))
            .expect("store");
        assert!(failed.sent.is_empty());
        assert_eq!(failed.retry.len(), 2);

        let mut written = Vec::new();
        let ok = block_on(detector.deliver_as_one(
            &findings,
            "stdout",
            |page| {
                written = page.iter().map(|f| f.id.clone()).collect();
                Ok(())
            },
            now,
        ))
        .expect("store");
        assert_eq!(
            written,
            ["a", "b"],
            "the released findings are in the next document"
        );
        assert_eq!(ok.sent, ["a", "b"]);

        let mut again = None;
        let repeat = block_on(detector.deliver_as_one(
            &findings,
            "stdout",
            |page| {
                again = Some(page.len());
                Ok(())
            },
            now,
        ))
        .expect("store");
        assert_eq!(again, Some(0), "an empty document is still written");
        assert_eq!(repeat.already_sent, 2);
    }

    #[test]
    fn a_rejected_document_settles_its_findings_and_skips_low_ones() {
        let mut config = Config::default();
        config.alerts.min_severity = Severity::High;
        let detector = Detector::new(MemoryStore::new(), config);
        let findings = [finding("a", Severity::Low), finding("b", Severity::High)];
        let now = findings[0].first_seen;
        let rejected = block_on(detector.deliver_as_one(
            &findings,
            "stdout",
            |_| {
                Err(SinkError::Permanent {
                    sink: "stdout",
                    message: "no".into(),
                })
            },
            now,
        ))
        .expect("store");
        assert_eq!(rejected.below_threshold, 1);
        assert_eq!(rejected.rejected.len(), 1);
        let after =
            block_on(detector.deliver_as_one(&findings, "stdout", |_| Ok(()), now)).expect("store");
        assert_eq!(after.already_sent, 1);
    }
}
