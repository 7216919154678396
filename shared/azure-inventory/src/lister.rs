//! Paging through Resource Manager's subscription-wide disk, snapshot and gallery lists.

use crate::error::InventoryError;
use chrono::{DateTime, Utc};
use serde_json::Value;
use snapwatch_core::inventory::{Inventory, InventoryItem};
use snapwatch_core::model::Cloud;
use snapwatch_core::parse::azure::{gallery_item, inventory_item};
use snapwatch_core::parse::ParseError;
use snapwatch_http::{retry, retry_after_secs, Backoff, Failure, RetryPolicy};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Resource Manager in Azure's public cloud.
pub const ARM_ENDPOINT: &str = "https://management.azure.com";
/// The token audience for Resource Manager.
pub const ARM_RESOURCE: &str = "https://management.azure.com/";
/// The Compute disk API version listed with: it returns every field the baseline reads
/// (`diskState`, `networkAccessPolicy`, `publicNetworkAccess`, `dataAccessAuthMode`).
pub const API_VERSION: &str = "2023-04-02";
/// The `region` of an Azure [`Inventory`]: one listing covers every location of the
/// subscription, so the baseline's scope is the subscription.
pub const BASELINE_REGION: &str = "all-locations";
/// The Compute Gallery API version listed with: it returns `sharingProfile` with
/// `communityGalleryInfo` (community sharing came with 2021-10-01).
pub const GALLERY_API_VERSION: &str = "2023-07-03";
/// How one listed element becomes an inventory item.
type Mapping = fn(&Value) -> Result<InventoryItem, ParseError>;
/// The collections listed, in order, with their API version and mapping. A gallery's sharing
/// permission is on the gallery list; whom a `Groups` gallery is shared with takes one GET of
/// that gallery. Nothing is requested per image.
const COLLECTIONS: [(&str, &str, Mapping); 3] = [
    ("disks", API_VERSION, inventory_item),
    ("snapshots", API_VERSION, inventory_item),
    ("galleries", GALLERY_API_VERSION, gallery_item),
];
/// A page request that takes longer than this has failed (and is retried).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// ARM throttles per principal and subscription and says how long to wait (`Retry-After`, often
/// under a minute); a run waits that out a few times before giving up until the next run.
pub const DEFAULT_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 5,
    backoff: Backoff::exponential(Duration::from_secs(1), Duration::from_secs(16)),
    max_retry_after: Duration::from_secs(60),
};

/// Bearer tokens for Resource Manager ([`ARM_RESOURCE`]). Implementations cache: the lister
/// asks before every request.
pub trait TokenSource: Send + Sync {
    /// A current token; a [`Failure`] says whether trying again may help.
    fn token(&self) -> impl Future<Output = Result<String, Failure>> + Send;
}

impl<T: TokenSource> TokenSource for Arc<T> {
    fn token(&self) -> impl Future<Output = Result<String, Failure>> + Send {
        (**self).token()
    }
}

/// A listed element the core could not read as a disk, snapshot or gallery: reported, never
/// dropped silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedItem {
    /// `disks`, `snapshots` or `galleries`.
    pub collection: &'static str,
    /// Its `id`, when it has one.
    pub id: Option<String>,
    /// Why it was not read.
    pub reason: String,
}

/// What one listing of a subscription found.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The disks, snapshots and galleries, for [`snapwatch_core::baseline::check`].
    pub inventory: Inventory,
    /// Elements that could not be read.
    pub rejected: Vec<RejectedItem>,
    /// HTTP requests sent to Resource Manager, retries included (token requests not).
    pub requests: u64,
}

/// Lists a subscription's managed disks, snapshots and Compute Galleries.
#[derive(Debug, Clone)]
pub struct ArmLister<T> {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    tokens: T,
    policy: RetryPolicy,
    /// How long one listing may keep retrying; `None`: as long as the policy allows.
    time_budget: Option<Duration>,
}

impl<T: TokenSource> ArmLister<T> {
    /// A lister against `endpoint` ([`ARM_ENDPOINT`], another cloud's, or a test server).
    pub fn new(http: reqwest::Client, endpoint: reqwest::Url, tokens: T) -> Self {
        ArmLister {
            http,
            endpoint,
            tokens,
            policy: DEFAULT_RETRY,
            time_budget: None,
        }
    }

    /// Replaces [`DEFAULT_RETRY`].
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// No retry wait starts that would end more than `budget` after the listing began: a
    /// timer function must answer before its host's timeout kills it.
    pub fn with_time_budget(mut self, budget: Duration) -> Self {
        self.time_budget = Some(budget);
        self
    }

    /// Every managed disk, snapshot and Compute Gallery of `subscription`, as of `now`.
    pub async fn list_subscription(
        &self,
        subscription: &str,
        now: DateTime<Utc>,
    ) -> Result<Listing, InventoryError> {
        let subscription = subscription.trim();
        if subscription.is_empty()
            || !subscription
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(InventoryError::Subscription(subscription.to_owned()));
        }
        let deadline = self
            .time_budget
            .map(|budget| tokio::time::Instant::now() + budget);
        let requests = AtomicU64::new(0);
        let mut items: Vec<InventoryItem> = Vec::new();
        let mut rejected = Vec::new();
        for (collection, api_version, mapping) in COLLECTIONS {
            let base = self.endpoint.as_str().trim_end_matches('/');
            let first = format!(
                "{base}/subscriptions/{subscription}/providers/Microsoft.Compute/{collection}?api-version={api_version}"
            );
            let mut next = Some(parse_url(&first, collection)?);
            let mut page_number = 0u32;
            while let Some(url) = next.take() {
                page_number += 1;
                let what = format!("list {collection} of {subscription} (page {page_number})");
                let page = self.get_retried(&url, &what, &requests, deadline).await?;
                let (elements, link) = read_page(page, &what)?;
                for listed in &elements {
                    // The gallery list leaves out whom a `Groups` gallery is shared with; the
                    // gallery's own GET with `$select=Permissions` says it.
                    let detailed;
                    let element = if collection == "galleries" && sharing_groups_left_out(listed) {
                        detailed = self
                            .gallery_permissions(listed, &requests, deadline)
                            .await?;
                        &detailed
                    } else {
                        listed
                    };
                    match mapping(element) {
                        Ok(item) => items.push(item),
                        Err(error) => {
                            let id = element.get("id").and_then(Value::as_str).map(str::to_owned);
                            tracing::warn!(collection, id = ?id, %error, "listed resource not read");
                            rejected.push(RejectedItem {
                                collection,
                                id,
                                reason: error.to_string(),
                            });
                        }
                    }
                }
                if let Some(link) = link {
                    let link = self.same_origin(&link, &what)?;
                    if link == url {
                        return Err(InventoryError::Page {
                            what,
                            reason: "nextLink points at the same page".into(),
                        });
                    }
                    next = Some(link);
                }
            }
        }
        Ok(Listing {
            inventory: Inventory {
                cloud: Cloud::Azure,
                account: subscription.to_ascii_lowercase(),
                region: BASELINE_REGION.to_owned(),
                taken_at: now,
                items,
            },
            rejected,
            requests: requests.into_inner(),
        })
    }

    /// `gallery` as its own GET with `$select=Permissions` answers it (sharing groups included),
    /// or as listed when it has no id to ask with (the mapping then reports it).
    async fn gallery_permissions(
        &self,
        gallery: &Value,
        requests: &AtomicU64,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Value, InventoryError> {
        let Some(id) = gallery.get("id").and_then(Value::as_str) else {
            return Ok(gallery.clone());
        };
        let base = self.endpoint.as_str().trim_end_matches('/');
        let what = format!("read the sharing groups of {id}");
        let url = parse_url(
            &format!("{base}{id}?api-version={GALLERY_API_VERSION}&$select=Permissions"),
            &what,
        )?;
        self.get_retried(&url, &what, requests, deadline).await
    }

    /// `get` within the retry policy and the run's deadline, counting every attempt.
    async fn get_retried(
        &self,
        url: &reqwest::Url,
        what: &str,
        requests: &AtomicU64,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Value, InventoryError> {
        retry(&self.policy, what, deadline, |_| {
            requests.fetch_add(1, Ordering::Relaxed);
            self.get(url, what)
        })
        .await
        .map_err(|gave_up| InventoryError::GaveUp {
            what: what.to_owned(),
            attempts: gave_up.attempts,
            stop: gave_up.stop,
            last: Box::new(gave_up.error),
        })
    }

    /// One GET of a page, classified.
    async fn get(&self, url: &reqwest::Url, what: &str) -> Result<Value, InventoryError> {
        let token = self.tokens.token().await.map_err(InventoryError::Token)?;
        let response = self
            .http
            .get(url.clone())
            .bearer_auth(token)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|source| InventoryError::Network {
                what: what.to_owned(),
                source: source.without_url(),
            })?;
        let status = response.status();
        if status.is_success() {
            return response.json().await.map_err(|e| InventoryError::Page {
                what: what.to_owned(),
                reason: format!("not JSON: {}", e.without_url()),
            });
        }
        let retry_after = retry_after_secs(
            response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
        )
        .map(Duration::from_secs);
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let field = |name: &str| {
            body.pointer(&format!("/error/{name}"))
                .and_then(Value::as_str)
                .map(|s| s.chars().take(300).collect::<String>())
        };
        Err(InventoryError::Status {
            what: what.to_owned(),
            status: status.as_u16(),
            code: field("code").unwrap_or_else(|| "-".into()),
            message: field("message").unwrap_or_default(),
            retry_after,
        })
    }

    /// `link` when it stays on the endpoint the lister was given: the bearer token must never
    /// go to another host.
    fn same_origin(&self, link: &str, what: &str) -> Result<reqwest::Url, InventoryError> {
        let url = parse_url(link, what)?;
        if url.origin() != self.endpoint.origin() {
            return Err(InventoryError::Page {
                what: what.to_owned(),
                reason: format!(
                    "nextLink leaves Resource Manager ({})",
                    url.host_str().unwrap_or("no host")
                ),
            });
        }
        Ok(url)
    }
}

/// A gallery shared with `Groups` whose listing does not say with whom.
fn sharing_groups_left_out(gallery: &Value) -> bool {
    let sharing = gallery.pointer("/properties/sharingProfile");
    let by_groups = sharing
        .and_then(|s| s.get("permissions"))
        .and_then(Value::as_str)
        .is_some_and(|p| p.eq_ignore_ascii_case("Groups"));
    by_groups && sharing.and_then(|s| s.get("groups")).is_none()
}

fn parse_url(text: &str, what: &str) -> Result<reqwest::Url, InventoryError> {
    reqwest::Url::parse(text).map_err(|e| InventoryError::Page {
        what: what.to_owned(),
        reason: format!("not a URL: {e}"),
    })
}

/// The page's `value` elements and its `nextLink` (absent, null or empty on the last page).
fn read_page(page: Value, what: &str) -> Result<(Vec<Value>, Option<String>), InventoryError> {
    let Value::Object(mut page) = page else {
        return Err(InventoryError::Page {
            what: what.to_owned(),
            reason: "not an object".into(),
        });
    };
    let elements = match page.remove("value") {
        Some(Value::Array(elements)) => elements,
        _ => {
            return Err(InventoryError::Page {
                what: what.to_owned(),
                reason: "no `value` array".into(),
            })
        }
    };
    let next = match page.remove("nextLink") {
        None | Some(Value::Null) => None,
        Some(Value::String(link)) if link.trim().is_empty() => None,
        Some(Value::String(link)) => Some(link),
        Some(_) => {
            return Err(InventoryError::Page {
                what: what.to_owned(),
                reason: "`nextLink` is not a string".into(),
            })
        }
    };
    Ok((elements, next))
}
