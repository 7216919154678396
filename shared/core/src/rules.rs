//! The rule catalogue (the README's "Rules" section) and the rules themselves. Each rule is one file under `rules/`: what it is
//! (severity, techniques, description), when it fires, and what a responder does next.
//!
//! - `snapshot.public`, `snapshot.shared-external`, `snapshot.exported` and
//!   `snapshot.used-externally` in [`share`] (the snapshot itself was opened up or read out);
//! - `snapshot.restored-by-other` in [`restored_by_other`];
//! - `chain.exposed-restore` in [`exposed_restore`];
//! - `snapshot.unexplained` in [`unexplained`] (decided from the baseline's listing, not the graph).
//!
//! Rule ids are stable (users filter and suppress on them): see [`Rule::id`].

pub mod exposed_restore;
pub mod restored_by_other;
pub mod share;
pub mod unexplained;

use crate::config::Config;
use crate::graph::Graph;
pub use crate::model::Rule;
use crate::model::{Observation, Severity};

/// ATT&CK Modify Cloud Compute Infrastructure: Create Snapshot.
pub const T1578_001: &str = "T1578.001";
/// ATT&CK Modify Cloud Compute Infrastructure: Create Cloud Instance.
pub const T1578_002: &str = "T1578.002";
/// ATT&CK Transfer Data to Cloud Account.
pub const T1537: &str = "T1537";

/// What a rule is, as its own file declares it.
pub(crate) struct RuleMeta {
    severity: Severity,
    /// ATT&CK techniques every finding of the rule carries; instance restores add T1578.002.
    techniques: &'static [&'static str],
    description: &'static str,
    /// What a responder should do next, in order.
    next_steps: &'static [&'static str],
}

impl Rule {
    fn meta(self) -> &'static RuleMeta {
        match self {
            Rule::SnapshotPublic => &share::PUBLIC,
            Rule::SnapshotSharedExternal => &share::SHARED_EXTERNAL,
            Rule::SnapshotExported => &share::EXPORTED,
            Rule::SnapshotUsedExternally => &share::USED_EXTERNALLY,
            Rule::SnapshotRestoredByOther => &restored_by_other::META,
            Rule::ChainExposedRestore => &exposed_restore::META,
            Rule::SnapshotUnexplained => &unexplained::META,
        }
    }

    /// The severity every finding of this rule carries.
    pub fn severity(self) -> Severity {
        self.meta().severity
    }

    /// ATT&CK techniques every finding of this rule carries; instance restores add T1578.002.
    pub fn techniques(self) -> &'static [&'static str] {
        self.meta().techniques
    }

    /// When the rule fires, in one sentence (the README's rule table).
    pub fn description(self) -> &'static str {
        self.meta().description
    }

    /// What a responder should do next: a finding's `next_steps`.
    pub fn next_steps(self) -> Vec<String> {
        self.meta()
            .next_steps
            .iter()
            .map(|s| s.to_string())
            .collect()
    }
}

/// What the rules read: the loaded chain graph and the configuration (trust, window, ports).
pub(crate) struct RuleContext<'a> {
    pub(crate) graph: &'a Graph,
    pub(crate) config: &'a Config,
}

/// A rule that fired on an anchor: the observations that triggered it and the chain around them.
/// [`crate::finding::assemble`] makes the finding of it.
pub(crate) struct Hit<'a> {
    pub(crate) rule: Rule,
    pub(crate) anchor: &'a str,
    pub(crate) root: Option<String>,
    pub(crate) triggers: Vec<&'a Observation>,
    pub(crate) context: Vec<&'a Observation>,
    pub(crate) title: String,
    pub(crate) summary: String,
    pub(crate) instance_involved: bool,
}

impl<'a> RuleContext<'a> {
    /// Every graph rule that fires on `anchor`, in catalogue order.
    pub(crate) fn evaluate_anchor(&self, anchor: &'a str) -> Vec<Hit<'a>> {
        let mut hits = share::decide(self, anchor);
        hits.extend(restored_by_other::decide(self, anchor));
        hits.extend(exposed_restore::decide(self, anchor));
        hits
    }

    /// Whether the event's principal is one the configuration trusts.
    fn actor_trusted(&self, o: &Observation) -> bool {
        o.event
            .actor
            .as_deref()
            .is_some_and(|a| self.config.is_trusted_principal(a))
    }
}

/// The principal of an observation, as a summary names it.
fn actor_of(o: &Observation) -> &str {
    o.event.actor.as_deref().unwrap_or("an unknown principal")
}
