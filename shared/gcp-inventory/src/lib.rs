//! The snapshot baseline's listing on GCP: every Compute Engine snapshot, image, machine image and
//! disk (zonal and regional) of one project, each with the members of its IAM policy
//! (`getIamPolicy`), as the core's [`Inventory`]. The core maps each resource
//! ([`snapwatch_core::parse::gcp::inventory_item`]) so its id is the one the audit-log parser
//! gives it.
//!
//! Requests: one list call per page of each collection (pages of up to 500) and one
//! `getIamPolicy` per resource, so about 1,002 requests per 1,000 snapshots. Each goes through
//! the one retry driver of `snapwatch-http`: 429, 5xx, transport failures and the quota errors
//! Compute Engine sends as 403 (`rateLimitExceeded`, `userRateLimitExceeded`,
//! `quotaExceeded`, or status `RESOURCE_EXHAUSTED`) are retried, honouring `Retry-After`.

#![warn(missing_docs)]

#[cfg(feature = "adc")]
pub mod adc;
mod api;
mod error;
pub mod metadata;

pub use error::InventoryError;

/// The classified failure of a Compute Engine error answer (`status` and its body): the rule
/// the listing uses, for the other Compute Engine clients (the response's writes) to share.
pub fn classify_answer(status: u16, body: &str) -> Failure {
    api::classify(status, body)
}

use api::{AggregatedDisks, ListPage, Listed, Policy};
use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use snapwatch_core::inventory::{Inventory, InventoryItem};
use snapwatch_core::parse::gcp::{inventory_item, listed_resource};
use snapwatch_core::Cloud;
use snapwatch_http::{
    retry, retry_after_secs, status_class, AccessToken, Backoff, Class, Failure, RetryPolicy,
};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The public Compute Engine endpoint.
pub const COMPUTE_ENDPOINT: &str = "https://compute.googleapis.com";
/// The region an [`Inventory`] of a whole project carries: the listing covers every zone and
/// region, so a project is one baseline scope.
pub const PROJECT_SCOPE_REGION: &str = "global";
/// The largest page the list calls return (`maxResults` 0..=500).
const MAX_PAGE: u32 = 500;
const DEFAULT_CONCURRENCY: usize = 8;

/// Where the listing's bearer tokens come from: the metadata server on Cloud Run, Application
/// Default Credentials in the CLI, none against a local stub.
pub trait TokenSource: Send + Sync {
    /// A token for the `cloud-platform` (or `compute.readonly`) scope; `None` sends no
    /// `Authorization` header.
    fn token(&self) -> impl Future<Output = Result<Option<AccessToken>, Failure>> + Send;
}

/// No token: for a local stub server.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoToken;

impl TokenSource for NoToken {
    async fn token(&self) -> Result<Option<AccessToken>, Failure> {
        Ok(None)
    }
}

/// The collections listed per project, in listing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Collection {
    Snapshots,
    Images,
    MachineImages,
    /// `aggregated/disks`: zonal and regional disks of every location.
    Disks,
}

impl Collection {
    const ALL: [Collection; 4] = [
        Collection::Snapshots,
        Collection::Images,
        Collection::MachineImages,
        Collection::Disks,
    ];

    fn path(self) -> &'static str {
        match self {
            Collection::Snapshots => "global/snapshots",
            Collection::Images => "global/images",
            Collection::MachineImages => "global/machineImages",
            Collection::Disks => "aggregated/disks",
        }
    }
}

/// Lists one project's snapshot-like resources and disks with their IAM policies.
pub struct ComputeLister<T> {
    http: reqwest::Client,
    endpoint: String,
    tokens: T,
    policy: RetryPolicy,
    page_size: u32,
    concurrency: usize,
    requests: Arc<AtomicU64>,
}

impl<T: TokenSource> ComputeLister<T> {
    /// A lister against `endpoint` ([`COMPUTE_ENDPOINT`] in production) with tokens from
    /// `tokens`: pages of 500, eight policy reads in flight, six attempts per request.
    pub fn new(endpoint: &str, tokens: T) -> Result<Self, InventoryError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!(
                "snapwatch-gcp-inventory/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| InventoryError::Client(e.to_string()))?;
        Ok(ComputeLister {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            tokens,
            policy: RetryPolicy {
                max_attempts: 6,
                backoff: Backoff::exponential(Duration::from_millis(200), Duration::from_secs(5)),
                // Compute Engine's per-minute quotas refill within a minute.
                max_retry_after: Duration::from_secs(60),
            },
            page_size: MAX_PAGE,
            concurrency: DEFAULT_CONCURRENCY,
            requests: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Another retry budget (tests shorten the waits).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// `maxResults` of the list calls, clamped to 1..=500.
    pub fn with_page_size(mut self, size: u32) -> Self {
        self.page_size = size.clamp(1, MAX_PAGE);
        self
    }

    /// How many `getIamPolicy` calls may be in flight at once (at least 1).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// HTTP requests sent so far, retries included (the cost figure of a run).
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Everything listed in `project`, each resource with its IAM policy's members. A resource
    /// deleted between its list page and its policy read is left out; any resource the core
    /// cannot map fails the listing (the run is not recorded, nothing is silently dropped).
    pub async fn list_project(
        &self,
        project: &str,
        taken_at: DateTime<Utc>,
    ) -> Result<Inventory, InventoryError> {
        let mut listed = Vec::new();
        for collection in Collection::ALL {
            listed.extend(self.list_collection(project, collection).await?);
        }
        let reads = stream::iter(listed.into_iter().map(|item| self.with_policy(item)))
            .buffer_unordered(self.concurrency);
        let read: Vec<Result<Option<InventoryItem>, InventoryError>> = reads.collect().await;
        let mut items = Vec::with_capacity(read.len());
        for item in read {
            items.extend(item?);
        }
        items.sort_by(|a, b| a.resource.id.cmp(&b.resource.id));
        // A resource can show up on two pages when the list changes while it is being paged.
        items.dedup_by(|later, earlier| later.resource == earlier.resource);
        tracing::info!(project, items = items.len(), "project listed");
        Ok(Inventory {
            cloud: Cloud::Gcp,
            account: project.to_string(),
            region: PROJECT_SCOPE_REGION.to_string(),
            taken_at,
            items,
        })
    }

    /// Every page of one collection, following `nextPageToken`.
    async fn list_collection(
        &self,
        project: &str,
        collection: Collection,
    ) -> Result<Vec<Listed>, InventoryError> {
        let base = format!(
            "{}/compute/v1/projects/{project}/{}",
            self.endpoint,
            collection.path()
        );
        let mut found = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut query = vec![("maxResults", self.page_size.to_string())];
            if collection == Collection::Disks {
                // A location that cannot answer is named in `unreachables` instead of failing
                // the whole call; a partial listing would misreport deletions, so it fails.
                query.push(("returnPartialSuccess", "true".to_string()));
            }
            if let Some(token) = &page_token {
                query.push(("pageToken", token.clone()));
            }
            let what = format!("list {}", collection.path());
            let body =
                self.get(&what, &base, &query)
                    .await?
                    .ok_or_else(|| InventoryError::Malformed {
                        what: what.clone(),
                        reason: "the project or collection does not exist (HTTP 404)".to_string(),
                    })?;
            let next = if collection == Collection::Disks {
                let page: AggregatedDisks = decode(&what, &body)?;
                if let Some(location) = page.unreachables.first() {
                    return Err(InventoryError::Unreachable {
                        what,
                        location: location.clone(),
                    });
                }
                found.extend(page.items.into_values().flat_map(|scoped| scoped.disks));
                page.next_page_token
            } else {
                let page: ListPage = decode(&what, &body)?;
                found.extend(page.items);
                page.next_page_token
            };
            match next.filter(|token| !token.is_empty()) {
                Some(token) if Some(&token) == page_token.as_ref() => {
                    return Err(InventoryError::Malformed {
                        what,
                        reason: "the next page token repeats the last one".to_string(),
                    })
                }
                Some(token) => page_token = Some(token),
                None => return Ok(found),
            }
        }
    }

    /// The listed resource with its policy's members, mapped by the core; `None` when it was
    /// deleted since it was listed.
    async fn with_policy(&self, listed: Listed) -> Result<Option<InventoryItem>, InventoryError> {
        let malformed = |reason: String| InventoryError::Malformed {
            what: format!("listed resource {:?}", listed.self_link),
            reason,
        };
        let resource = listed_resource(&listed.self_link).map_err(|e| malformed(e.to_string()))?;
        let what = format!("getIamPolicy {}", resource.id);
        let url = format!("{}/compute/v1/{}/getIamPolicy", self.endpoint, resource.id);
        // Version 3 returns conditional bindings too; their members can still read the resource.
        let query = [("optionsRequestedPolicyVersion", "3".to_string())];
        let Some(body) = self.get(&what, &url, &query).await? else {
            return Ok(None);
        };
        let policy: Policy = decode(&what, &body)?;
        let members = policy
            .bindings
            .iter()
            .flat_map(|binding| binding.members.iter().map(String::as_str));
        inventory_item(
            &listed.self_link,
            listed.creation_timestamp.as_deref(),
            members,
        )
        .map(Some)
        .map_err(|e| malformed(e.to_string()))
    }

    /// One GET through the retry driver; `None` on 404.
    async fn get(
        &self,
        what: &str,
        url: &str,
        query: &[(&str, String)],
    ) -> Result<Option<String>, InventoryError> {
        retry(&self.policy, what, None, |_| self.attempt(url, query))
            .await
            .map_err(|retried| InventoryError::Request {
                what: what.to_string(),
                attempts: retried.attempts,
                class: retried.error.class,
                source: retried.error,
            })
    }

    async fn attempt(
        &self,
        url: &str,
        query: &[(&str, String)],
    ) -> Result<Option<String>, Failure> {
        let mut request = self.http.get(url).query(query);
        if let Some(token) = self.tokens.token().await? {
            request = request.bearer_auth(token.expose());
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = request.send().await.map_err(|e| {
            Failure::transient("Compute Engine is unreachable or timed out").with_source(e)
        })?;
        let status = response.status().as_u16();
        let retry_after = retry_after_secs(
            response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok()),
        );
        let text = response.text().await.map_err(|e| {
            Failure::transient("the Compute Engine answer was cut off").with_source(e)
        })?;
        if (200..300).contains(&status) {
            return Ok(Some(text));
        }
        if status == 404 {
            return Ok(None);
        }
        let mut failure = api::classify(status, &text);
        if let Some(secs) = retry_after {
            failure = failure.with_retry_after(Duration::from_secs(secs));
        }
        Err(failure)
    }
}

fn decode<V: serde::de::DeserializeOwned>(what: &str, body: &str) -> Result<V, InventoryError> {
    serde_json::from_str(body).map_err(|e| InventoryError::Malformed {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

/// The class of an error answer: the status rule of `snapwatch-http`, except that Compute
/// Engine sends quota and rate errors as 403.
fn class_of(status: u16, reasons: &[&str], canonical: &str) -> Class {
    const QUOTA_REASONS: [&str; 3] = [
        "rateLimitExceeded",
        "userRateLimitExceeded",
        "quotaExceeded",
    ];
    if canonical == "RESOURCE_EXHAUSTED" || reasons.iter().any(|r| QUOTA_REASONS.contains(r)) {
        return Class::Transient;
    }
    status_class(status)
}
