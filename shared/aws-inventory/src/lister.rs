//! The listing: every snapshot-like resource of one account and region, with who may use it.

use crate::client::{QueryClient, Service};
use crate::error::InventoryError;
use crate::xml::{self, DbSnapshot, DbSnapshotFamily, EbsSnapshot, Grants, MachineImage, Page};
use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use snapwatch_core::baseline::{Inventory, InventoryItem, Permissions};
use snapwatch_core::{Cloud, Resource, ResourceKind};
use std::future::Future;
use tracing::Instrument;

const DEFAULT_CONCURRENCY: usize = 8;
/// The largest pages the APIs allow: EC2 `MaxResults` up to 1000, RDS `MaxRecords` 20 to 100.
const DEFAULT_EC2_PAGE: u32 = 1000;
const DEFAULT_RDS_PAGE: u32 = 100;

/// Lists EBS snapshots, RDS DB and cluster snapshots and AMIs with their permissions.
#[derive(Debug, Clone)]
pub struct SnapshotLister {
    client: QueryClient,
    concurrency: usize,
    ec2_page: u32,
    rds_page: u32,
}

impl SnapshotLister {
    /// Eight attribute calls in flight, EC2 pages of 1000, RDS pages of 100.
    pub fn new(client: QueryClient) -> Self {
        SnapshotLister {
            client,
            concurrency: DEFAULT_CONCURRENCY,
            ec2_page: DEFAULT_EC2_PAGE,
            rds_page: DEFAULT_RDS_PAGE,
        }
    }

    /// How many per-resource attribute calls may be in flight at once (at least 1).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// `MaxResults` of the EC2 list calls and `MaxRecords` of the RDS ones. AWS accepts
    /// 5..=1000 (DescribeSnapshots), 1..=1000 (DescribeImages) and 20..=100 (RDS); the values are
    /// sent as given so that tests against an emulator can use small pages.
    pub fn with_page_sizes(mut self, ec2: u32, rds: u32) -> Self {
        self.ec2_page = ec2.max(1);
        self.rds_page = rds.max(1);
        self
    }

    pub fn client(&self) -> &QueryClient {
        &self.client
    }

    /// STS GetCallerIdentity.
    pub async fn account_id(&self, region: &str) -> Result<String, InventoryError> {
        const ACTION: &str = "GetCallerIdentity";
        let body = self.client.call(Service::Sts, region, ACTION, &[]).await?;
        xml::caller_account(&body).map_err(|reason| InventoryError::malformed(ACTION, reason))
    }

    /// Every EBS snapshot (Owner self) with its createVolumePermission, every manual RDS DB
    /// snapshot with its `restore` attribute, every manual DB cluster snapshot with its `restore`
    /// attribute, every AMI (Owner self) with its launchPermission, in `region`; items sorted by
    /// resource id.
    pub async fn list_region(
        &self,
        account: &str,
        region: &str,
        taken_at: DateTime<Utc>,
    ) -> Result<Inventory, InventoryError> {
        let span = tracing::info_span!("list_region", account, region);
        self.list_region_in_span(account, region, taken_at)
            .instrument(span)
            .await
    }

    async fn list_region_in_span(
        &self,
        account: &str,
        region: &str,
        taken_at: DateTime<Utc>,
    ) -> Result<Inventory, InventoryError> {
        let mut items = Vec::new();
        items.extend(self.ebs_snapshots(account, region).await?);
        items.extend(
            self.db_snapshots(account, region, DbSnapshotFamily::Instance)
                .await?,
        );
        items.extend(
            self.db_snapshots(account, region, DbSnapshotFamily::Cluster)
                .await?,
        );
        items.extend(self.images(account, region).await?);
        items.sort_by(|a, b| {
            (a.resource.id.as_str(), a.resource.kind)
                .cmp(&(b.resource.id.as_str(), b.resource.kind))
        });
        // A resource can show up on two pages when the list changes while it is being paged.
        items.dedup_by(|later, earlier| later.resource == earlier.resource);
        tracing::info!(account, region, items = items.len(), "region listed");
        Ok(Inventory {
            cloud: Cloud::Aws,
            account: account.to_string(),
            region: region.to_string(),
            taken_at,
            items,
        })
    }

    /// Every page of an EC2 `Describe*` call for the account's own resources (`Owner.1=self`).
    async fn owned_ec2_resources<T>(
        &self,
        region: &str,
        action: &'static str,
        parse: fn(&str) -> Result<Page<T>, xml::Reason>,
    ) -> Result<Vec<T>, InventoryError> {
        let page_size = self.ec2_page.to_string();
        paginate(action, |token| {
            let page_size = page_size.clone();
            async move {
                let mut params = vec![("Owner.1", "self"), ("MaxResults", page_size.as_str())];
                if let Some(token) = token.as_deref() {
                    params.push(("NextToken", token));
                }
                let body = self
                    .client
                    .call(Service::Ec2, region, action, &params)
                    .await?;
                parse(&body).map_err(|reason| InventoryError::malformed(action, reason))
            }
        })
        .await
    }

    async fn ebs_snapshots(
        &self,
        account: &str,
        region: &str,
    ) -> Result<Vec<InventoryItem>, InventoryError> {
        const LIST: &str = "DescribeSnapshots";
        const ATTRIBUTE: &str = "DescribeSnapshotAttribute";
        let snapshots = self
            .owned_ec2_resources(region, LIST, xml::snapshots_page)
            .await?;
        tracing::debug!(region, count = snapshots.len(), "EBS snapshots listed");
        self.with_permissions(snapshots, |snapshot: EbsSnapshot| async move {
            let params = [
                ("SnapshotId", snapshot.id.as_str()),
                ("Attribute", "createVolumePermission"),
            ];
            let body = self
                .client
                .call(Service::Ec2, region, ATTRIBUTE, &params)
                .await;
            let grants = match vanished_is_none(body, region, ATTRIBUTE, &snapshot.id)? {
                Some(body) => {
                    xml::ec2_permission_grants(&body, ATTRIBUTE, "createVolumePermission")
                        .map_err(|reason| InventoryError::malformed(ATTRIBUTE, reason))?
                }
                None => return Ok(None),
            };
            Ok(Some(InventoryItem {
                resource: Resource::new(ResourceKind::Snapshot, ec2_id(&snapshot.id)),
                created: snapshot.start_time,
                permissions: permissions(grants, account, false),
                created_with: snapshot
                    .description
                    .as_deref()
                    .and_then(image_from_description)
                    .map(|ami| Resource::new(ResourceKind::Image, ami)),
                observed_via: ATTRIBUTE.to_string(),
            }))
        })
        .await
    }

    async fn images(
        &self,
        account: &str,
        region: &str,
    ) -> Result<Vec<InventoryItem>, InventoryError> {
        const LIST: &str = "DescribeImages";
        const ATTRIBUTE: &str = "DescribeImageAttribute";
        let images = self
            .owned_ec2_resources(region, LIST, xml::images_page)
            .await?;
        tracing::debug!(region, count = images.len(), "AMIs listed");
        self.with_permissions(images, |image: MachineImage| async move {
            let params = [
                ("ImageId", image.id.as_str()),
                ("Attribute", "launchPermission"),
            ];
            let body = self
                .client
                .call(Service::Ec2, region, ATTRIBUTE, &params)
                .await;
            let grants = match vanished_is_none(body, region, ATTRIBUTE, &image.id)? {
                Some(body) => xml::ec2_permission_grants(&body, ATTRIBUTE, "launchPermission")
                    .map_err(|reason| InventoryError::malformed(ATTRIBUTE, reason))?,
                None => return Ok(None),
            };
            Ok(Some(InventoryItem {
                resource: Resource::new(ResourceKind::Image, ec2_id(&image.id)),
                created: image.creation_date,
                permissions: permissions(grants, account, image.is_public),
                created_with: None,
                observed_via: ATTRIBUTE.to_string(),
            }))
        })
        .await
    }

    async fn db_snapshots(
        &self,
        account: &str,
        region: &str,
        family: DbSnapshotFamily,
    ) -> Result<Vec<InventoryItem>, InventoryError> {
        let (list, attribute, identifier_param, arn_type) = match family {
            DbSnapshotFamily::Instance => (
                "DescribeDBSnapshots",
                "DescribeDBSnapshotAttributes",
                "DBSnapshotIdentifier",
                "snapshot",
            ),
            DbSnapshotFamily::Cluster => (
                "DescribeDBClusterSnapshots",
                "DescribeDBClusterSnapshotAttributes",
                "DBClusterSnapshotIdentifier",
                "cluster-snapshot",
            ),
        };
        let page_size = self.rds_page.to_string();
        let snapshots = paginate(list, |marker| {
            let page_size = page_size.clone();
            async move {
                // Automated snapshots cannot be shared, so only manual ones can leak.
                let mut params = vec![
                    ("SnapshotType", "manual"),
                    ("MaxRecords", page_size.as_str()),
                ];
                if let Some(marker) = marker.as_deref() {
                    params.push(("Marker", marker));
                }
                let body = self
                    .client
                    .call(Service::Rds, region, list, &params)
                    .await?;
                xml::db_snapshots_page(&body, family)
                    .map_err(|reason| InventoryError::malformed(list, reason))
            }
        })
        .await?;
        let manual: Vec<DbSnapshot> = snapshots
            .into_iter()
            .filter(|s| {
                s.snapshot_type
                    .as_deref()
                    .is_none_or(|t| t.eq_ignore_ascii_case("manual"))
            })
            .collect();
        tracing::debug!(
            region,
            list,
            count = manual.len(),
            "manual RDS snapshots listed"
        );
        self.with_permissions(manual, |snapshot: DbSnapshot| async move {
            // The parser guarantees one of the two; the identifier is what the call documents.
            let Some(key) = snapshot.identifier.as_deref().or(snapshot.arn.as_deref()) else {
                return Err(InventoryError::malformed(
                    list,
                    "snapshot without identifier",
                ));
            };
            let params = [(identifier_param, key)];
            let body = self
                .client
                .call(Service::Rds, region, attribute, &params)
                .await;
            let grants = match vanished_is_none(body, region, attribute, key)? {
                Some(body) => xml::rds_restore_grants(&body, family)
                    .map_err(|reason| InventoryError::malformed(attribute, reason))?,
                None => return Ok(None),
            };
            let arn = match &snapshot.arn {
                Some(arn) => arn.to_ascii_lowercase(),
                None => rds_arn(region, account, arn_type, key),
            };
            Ok(Some(InventoryItem {
                resource: Resource::new(ResourceKind::DbSnapshot, arn),
                created: snapshot.created,
                permissions: permissions(grants, account, false),
                created_with: None,
                observed_via: attribute.to_string(),
            }))
        })
        .await
    }

    /// Runs `describe` for every listed resource, `concurrency` at a time; `Ok(None)` results
    /// (resources that vanished meanwhile) are dropped, the first error ends the listing.
    async fn with_permissions<T, F, Fut>(
        &self,
        listed: Vec<T>,
        describe: F,
    ) -> Result<Vec<InventoryItem>, InventoryError>
    where
        F: Fn(T) -> Fut,
        Fut: Future<Output = Result<Option<InventoryItem>, InventoryError>>,
    {
        let mut results =
            stream::iter(listed.into_iter().map(describe)).buffer_unordered(self.concurrency);
        let mut items = Vec::new();
        while let Some(result) = results.next().await {
            if let Some(item) = result? {
                items.push(item);
            }
        }
        Ok(items)
    }
}

/// Follows `nextToken` / `Marker` until the API stops returning one. A token that repeats would
/// loop forever, so it is treated as a malformed response.
pub(crate) async fn paginate<T, F, Fut>(
    action: &str,
    mut fetch: F,
) -> Result<Vec<T>, InventoryError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page<T>, InventoryError>>,
{
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = fetch(token.clone()).await?;
        all.extend(page.items);
        match page.next {
            Some(next) if token.as_deref() == Some(next.as_str()) => {
                return Err(InventoryError::malformed(
                    action,
                    format!("the pagination token {next:?} repeated"),
                ))
            }
            Some(next) => token = Some(next),
            None => return Ok(all),
        }
    }
}

/// A resource deleted between the list call and its attribute call is skipped, not an error.
fn vanished_is_none(
    response: Result<String, InventoryError>,
    region: &str,
    action: &str,
    id: &str,
) -> Result<Option<String>, InventoryError> {
    match response {
        Ok(body) => Ok(Some(body)),
        Err(error) if error.is_not_found() => {
            tracing::debug!(region, action, id, %error, "resource vanished while listing; skipped");
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// Who may use the resource, with the owner's own account left out (sharing with oneself grants
/// nothing) and `isPublic` folded in.
fn permissions(grants: Grants, own_account: &str, also_public: bool) -> Permissions {
    Permissions {
        public: grants.public || also_public,
        accounts: grants
            .accounts
            .into_iter()
            .filter(|a| a != own_account)
            .collect(),
        principals: grants.principals.into_iter().collect(),
        ..Permissions::default()
    }
}

/// As the CloudTrail parser reads EC2 ids: bare ids as they are, ARNs reduced to their id.
fn ec2_id(raw: &str) -> String {
    let raw = raw.trim();
    if raw.starts_with("arn:") {
        raw.rsplit('/').next().unwrap_or(raw).to_string()
    } else {
        raw.to_string()
    }
}

/// The lower-cased RDS ARN, as the CloudTrail parser builds it when a record carries only the
/// identifier (the list responses normally carry the ARN itself).
fn rds_arn(region: &str, account: &str, resource_type: &str, identifier: &str) -> String {
    if identifier.starts_with("arn:") {
        return identifier.to_ascii_lowercase();
    }
    let partition = if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    };
    format!("arn:{partition}:rds:{region}:{account}:{resource_type}:{identifier}")
        .to_ascii_lowercase()
}

/// The AMI an EBS snapshot was made for, from the description EC2 gives the snapshots it creates
/// itself: `Created by CreateImage(i-…) for ami-… from vol-…` (CreateImage) and
/// `Copied for DestinationAmi ami-… from SourceAmi ami-… …` (CopyImage).
pub fn image_from_description(description: &str) -> Option<String> {
    let after = if let Some(rest) = description.strip_prefix("Created by CreateImage(") {
        rest.split_once(") for ")?.1
    } else {
        description.strip_prefix("Copied for DestinationAmi ")?
    };
    let id: String = after
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let hex = id.strip_prefix("ami-")?;
    (!hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn the_ami_is_read_from_create_image_and_copy_image_descriptions() {
        assert_eq!(
            image_from_description(
                "Created by CreateImage(i-0123456789abcdef0) for ami-0fedcba9876543210 from vol-0a1b2c3d4e5f60719"
            )
            .as_deref(),
            Some("ami-0fedcba9876543210")
        );
        assert_eq!(
            image_from_description("Created by CreateImage(i-1234abcd) for ami-1a2b3c4d")
                .as_deref(),
            Some("ami-1a2b3c4d")
        );
        assert_eq!(
            image_from_description(
                "Copied for DestinationAmi ami-0aaaabbbbccccdddd from SourceAmi ami-0111122223333444 for SourceSnapshot snap-0123456789abcdef0. Task created on 1,700,000,000,000."
            )
            .as_deref(),
            Some("ami-0aaaabbbbccccdddd")
        );
    }

    #[test]
    fn other_descriptions_name_no_image() {
        for description in [
            "",
            "nightly backup",
            "Auto-created snapshot for AMI ami-0123456789abcdef0",
            "This snapshot is Created by CreateImage(i-1) for ami-0123abcd",
            "Created by CreateImage(i-0123456789abcdef0) for ami- from vol-1",
            "Created by CreateImage(i-0123456789abcdef0) for ami-zzzz from vol-1",
            "Created by CreateImage(i-0123456789abcdef0)",
            "Copied for DestinationAmi snap-0123",
            "Copied snap-0123456789abcdef0 from eu-west-1",
        ] {
            assert_eq!(image_from_description(description), None, "{description:?}");
        }
    }

    #[test]
    fn the_own_account_is_never_a_grantee_and_is_public_counts() {
        let grants = Grants {
            public: false,
            accounts: vec![
                "111122223333".into(),
                "999988887777".into(),
                "999988887777".into(),
            ],
            principals: vec!["arn:aws:organizations::111122223333:organization/o-1".into()],
        };
        let p = permissions(grants, "111122223333", true);
        assert!(p.public);
        assert_eq!(p.accounts, BTreeSet::from(["999988887777".to_string()]));
        assert_eq!(
            p.principals,
            BTreeSet::from(["arn:aws:organizations::111122223333:organization/o-1".to_string()])
        );
        let only_self = Grants {
            public: false,
            accounts: vec!["111122223333".into()],
            principals: vec![],
        };
        assert!(permissions(only_self, "111122223333", false).is_private());
    }

    #[test]
    fn ids_are_normalised_like_the_cloudtrail_parsers() {
        assert_eq!(ec2_id("snap-0abc"), "snap-0abc");
        assert_eq!(
            ec2_id("arn:aws:ec2:us-west-2::snapshot/snap-01234567"),
            "snap-01234567"
        );
        assert_eq!(
            rds_arn("eu-west-1", "111122223333", "snapshot", "Orders-Before"),
            "arn:aws:rds:eu-west-1:111122223333:snapshot:orders-before"
        );
        assert_eq!(
            rds_arn("cn-north-1", "111122223333", "cluster-snapshot", "Ledger"),
            "arn:aws-cn:rds:cn-north-1:111122223333:cluster-snapshot:ledger"
        );
        assert_eq!(
            rds_arn(
                "eu-west-1",
                "1",
                "snapshot",
                "arn:aws:rds:eu-west-1:1:snapshot:X"
            ),
            "arn:aws:rds:eu-west-1:1:snapshot:x"
        );
    }

    #[test]
    fn pagination_follows_tokens_and_refuses_a_repeated_one() {
        let pages = |token: Option<String>| async move {
            let (items, next) = match token.as_deref() {
                None => (vec![1, 2], Some("a".to_string())),
                Some("a") => (vec![3], Some("b".to_string())),
                Some("b") => (vec![4], None),
                Some(other) => panic!("unexpected token {other}"),
            };
            Ok(Page { items, next })
        };
        let all = futures_executor(paginate("DescribeSnapshots", pages));
        assert_eq!(all.unwrap(), vec![1, 2, 3, 4]);

        let stuck = |_token: Option<String>| async move {
            Ok(Page {
                items: vec![1],
                next: Some("same".to_string()),
            })
        };
        let error = futures_executor(paginate("DescribeSnapshots", stuck)).unwrap_err();
        assert!(matches!(error, InventoryError::Malformed { .. }), "{error}");
    }

    /// The Lambda and the CLI run listings on a multi-threaded runtime (and may spawn one per
    /// region): the futures must be `Send`, the lister shareable.
    #[test]
    fn listing_futures_are_send_and_the_lister_is_shareable() {
        fn assert_send<T: Send>(_: &T) {}
        fn assert_shareable<T: Send + Sync + Clone + 'static>() {}
        assert_shareable::<SnapshotLister>();
        let credentials = aws_credential_types::Credentials::new("a", "b", None, None, "test");
        let lister = SnapshotLister::new(QueryClient::new(
            reqwest::Client::new(),
            aws_credential_types::provider::SharedCredentialsProvider::new(credentials),
            None,
        ));
        assert_send(&lister.list_region("111122223333", "eu-west-1", Utc::now()));
        assert_send(&lister.account_id("eu-west-1"));
        assert_send(
            &lister
                .client()
                .call(Service::Ec2, "eu-west-1", "DescribeSnapshots", &[]),
        );
    }

    fn futures_executor<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }
}
