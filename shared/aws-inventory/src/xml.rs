//! Reading the Query-API XML responses: pure functions from a response body to plain values.
//!
//! Elements are matched by local name, so the namespaces (`http://ec2.amazonaws.com/doc/…`,
//! `http://rds.amazonaws.com/doc/…`, `https://sts.amazonaws.com/doc/…`) never matter. Unknown
//! elements are ignored; a missing list is an empty list. A failure is a reason string that the
//! caller wraps into `InventoryError::Malformed` with the action name.

use chrono::{DateTime, Utc};
use roxmltree::{Document, Node};
use snapwatch_core::parse::parse_time;

/// An AWS error document: EC2's `<Response><Errors><Error>` or RDS/STS's `<ErrorResponse><Error>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorDocument {
    pub code: String,
    pub message: String,
}

/// One page of a list call and the token of the next one (`nextToken` / `Marker`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EbsSnapshot {
    pub id: String,
    pub start_time: Option<DateTime<Utc>>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MachineImage {
    pub id: String,
    pub creation_date: Option<DateTime<Utc>>,
    pub is_public: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DbSnapshot {
    /// `DBSnapshotIdentifier` / `DBClusterSnapshotIdentifier`: what the attribute call takes.
    pub identifier: Option<String>,
    pub arn: Option<String>,
    pub created: Option<DateTime<Utc>>,
    pub snapshot_type: Option<String>,
}

/// Grantees as an attribute lists them, before the owner's own account is removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Grants {
    pub public: bool,
    pub accounts: Vec<String>,
    pub principals: Vec<String>,
}

/// Which RDS list: DB instance snapshots or DB cluster snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DbSnapshotFamily {
    Instance,
    Cluster,
}

impl DbSnapshotFamily {
    fn list_element(self) -> &'static str {
        match self {
            DbSnapshotFamily::Instance => "DBSnapshots",
            DbSnapshotFamily::Cluster => "DBClusterSnapshots",
        }
    }
    fn item_element(self) -> &'static str {
        match self {
            DbSnapshotFamily::Instance => "DBSnapshot",
            DbSnapshotFamily::Cluster => "DBClusterSnapshot",
        }
    }
    fn identifier_element(self) -> &'static str {
        match self {
            DbSnapshotFamily::Instance => "DBSnapshotIdentifier",
            DbSnapshotFamily::Cluster => "DBClusterSnapshotIdentifier",
        }
    }
    fn arn_element(self) -> &'static str {
        match self {
            DbSnapshotFamily::Instance => "DBSnapshotArn",
            DbSnapshotFamily::Cluster => "DBClusterSnapshotArn",
        }
    }
    fn attributes_result_element(self) -> &'static str {
        match self {
            DbSnapshotFamily::Instance => "DBSnapshotAttributesResult",
            DbSnapshotFamily::Cluster => "DBClusterSnapshotAttributesResult",
        }
    }
    fn attributes_list_element(self) -> &'static str {
        match self {
            DbSnapshotFamily::Instance => "DBSnapshotAttributes",
            DbSnapshotFamily::Cluster => "DBClusterSnapshotAttributes",
        }
    }
    fn attribute_element(self) -> &'static str {
        match self {
            DbSnapshotFamily::Instance => "DBSnapshotAttribute",
            DbSnapshotFamily::Cluster => "DBClusterSnapshotAttribute",
        }
    }
}

pub(crate) type Reason = String;

fn document(body: &str) -> Result<Document<'_>, Reason> {
    Document::parse(body).map_err(|e| format!("not XML: {e}"))
}

/// The root element, checked to be `{action}Response` so a body meant for another call (or an
/// HTML error page from a proxy) is never read as an empty result.
fn response_root<'a, 'input>(
    doc: &'a Document<'input>,
    action: &str,
) -> Result<Node<'a, 'input>, Reason> {
    let root = doc.root_element();
    let name = root.tag_name().name();
    if name.strip_suffix("Response") == Some(action) {
        Ok(root)
    } else {
        Err(format!("expected <{action}Response>, got <{name}>"))
    }
}

fn child<'a, 'input>(node: Node<'a, 'input>, name: &str) -> Option<Node<'a, 'input>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

fn children<'a, 'input: 'a>(
    node: Node<'a, 'input>,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'input>> + 'a {
    node.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

/// Follows a path of element names from `node`; `None` if any step is missing.
fn path<'a, 'input>(node: Node<'a, 'input>, names: &[&str]) -> Option<Node<'a, 'input>> {
    names.iter().try_fold(node, |at, name| child(at, name))
}

/// The trimmed text of a child element; empty text counts as absent.
fn text(node: Node, name: &str) -> Option<String> {
    let value = child(node, name)?.text()?.trim();
    (!value.is_empty()).then(|| value.to_string())
}

fn time(node: Node, name: &'static str) -> Option<DateTime<Utc>> {
    let value = text(node, name)?;
    match parse_time(name, &value) {
        Ok(t) => Some(t),
        Err(error) => {
            tracing::debug!(field = name, %error, "unreadable timestamp ignored");
            None
        }
    }
}

fn required(node: Node, name: &str, what: &str) -> Result<String, Reason> {
    text(node, name).ok_or_else(|| format!("{what} without <{name}>"))
}

/// Reads an error document, whichever of the two shapes it has; `None` if the body is not one.
pub(crate) fn error_document(body: &str) -> Option<ErrorDocument> {
    let doc = Document::parse(body).ok()?;
    let root = doc.root_element();
    let error = match root.tag_name().name() {
        "Response" => path(root, &["Errors", "Error"])?,
        "ErrorResponse" => child(root, "Error")?,
        "Error" => root,
        _ => return None,
    };
    Some(ErrorDocument {
        code: text(error, "Code")?,
        message: text(error, "Message").unwrap_or_default(),
    })
}

/// EC2 pages put `nextToken` directly under the response element; an empty token ends the list.
fn ec2_next_token(root: Node) -> Option<String> {
    text(root, "nextToken")
}

/// `DescribeSnapshots`: `snapshotSet/item`.
pub(crate) fn snapshots_page(body: &str) -> Result<Page<EbsSnapshot>, Reason> {
    let doc = document(body)?;
    let root = response_root(&doc, "DescribeSnapshots")?;
    let items = match child(root, "snapshotSet") {
        Some(set) => children(set, "item")
            .map(|item| {
                Ok(EbsSnapshot {
                    id: required(item, "snapshotId", "snapshotSet item")?,
                    start_time: time(item, "startTime"),
                    description: text(item, "description"),
                })
            })
            .collect::<Result<_, Reason>>()?,
        None => Vec::new(),
    };
    Ok(Page {
        items,
        next: ec2_next_token(root),
    })
}

/// `DescribeImages`: `imagesSet/item`.
pub(crate) fn images_page(body: &str) -> Result<Page<MachineImage>, Reason> {
    let doc = document(body)?;
    let root = response_root(&doc, "DescribeImages")?;
    let items = match child(root, "imagesSet") {
        Some(set) => children(set, "item")
            .map(|item| {
                Ok(MachineImage {
                    id: required(item, "imageId", "imagesSet item")?,
                    creation_date: time(item, "creationDate"),
                    is_public: text(item, "isPublic")
                        .is_some_and(|v| v.eq_ignore_ascii_case("true")),
                })
            })
            .collect::<Result<_, Reason>>()?,
        None => Vec::new(),
    };
    Ok(Page {
        items,
        next: ec2_next_token(root),
    })
}

/// `DescribeDBSnapshots` / `DescribeDBClusterSnapshots`: `…Result/DBSnapshots/DBSnapshot`, and
/// `…Result/Marker` for the next page.
pub(crate) fn db_snapshots_page(
    body: &str,
    family: DbSnapshotFamily,
) -> Result<Page<DbSnapshot>, Reason> {
    let action = match family {
        DbSnapshotFamily::Instance => "DescribeDBSnapshots",
        DbSnapshotFamily::Cluster => "DescribeDBClusterSnapshots",
    };
    let doc = document(body)?;
    let root = response_root(&doc, action)?;
    let Some(result) = child(root, &format!("{action}Result")) else {
        return Err(format!("no <{action}Result>"));
    };
    let items = match child(result, family.list_element()) {
        Some(list) => children(list, family.item_element())
            .map(|item| {
                let snapshot = DbSnapshot {
                    identifier: text(item, family.identifier_element()),
                    arn: text(item, family.arn_element()),
                    created: time(item, "SnapshotCreateTime"),
                    snapshot_type: text(item, "SnapshotType"),
                };
                if snapshot.identifier.is_none() && snapshot.arn.is_none() {
                    return Err(format!(
                        "{} without <{}> or <{}>",
                        family.item_element(),
                        family.identifier_element(),
                        family.arn_element()
                    ));
                }
                Ok(snapshot)
            })
            .collect::<Result<_, Reason>>()?,
        None => Vec::new(),
    };
    Ok(Page {
        items,
        next: text(result, "Marker"),
    })
}

/// `DescribeSnapshotAttribute` (`createVolumePermission`) and `DescribeImageAttribute`
/// (`launchPermission`): `item`s with `group` (`all`), `userId`, `organizationArn`,
/// `organizationalUnitArn`.
pub(crate) fn ec2_permission_grants(
    body: &str,
    action: &str,
    attribute: &str,
) -> Result<Grants, Reason> {
    let doc = document(body)?;
    let root = response_root(&doc, action)?;
    let mut grants = Grants::default();
    let Some(list) = child(root, attribute) else {
        return Ok(grants);
    };
    for item in children(list, "item") {
        if text(item, "group").is_some_and(|g| g.eq_ignore_ascii_case("all")) {
            grants.public = true;
        }
        if let Some(account) = text(item, "userId") {
            grants.accounts.push(account);
        }
        for principal in ["organizationArn", "organizationalUnitArn"] {
            if let Some(arn) = text(item, principal) {
                grants.principals.push(arn);
            }
        }
    }
    Ok(grants)
}

/// `DescribeDBSnapshotAttributes` / `DescribeDBClusterSnapshotAttributes`: the values of the
/// `restore` attribute (`all` = public, otherwise account ids).
pub(crate) fn rds_restore_grants(body: &str, family: DbSnapshotFamily) -> Result<Grants, Reason> {
    let action = match family {
        DbSnapshotFamily::Instance => "DescribeDBSnapshotAttributes",
        DbSnapshotFamily::Cluster => "DescribeDBClusterSnapshotAttributes",
    };
    let doc = document(body)?;
    let root = response_root(&doc, action)?;
    let mut grants = Grants::default();
    let Some(list) = path(
        root,
        &[
            &format!("{action}Result"),
            family.attributes_result_element(),
            family.attributes_list_element(),
        ],
    ) else {
        return Ok(grants);
    };
    let restore = children(list, family.attribute_element())
        .filter(|a| text(*a, "AttributeName").as_deref() == Some("restore"));
    for attribute in restore {
        let Some(values) = child(attribute, "AttributeValues") else {
            continue;
        };
        for value in children(values, "AttributeValue").filter_map(|v| v.text()) {
            let value = value.trim();
            if value.eq_ignore_ascii_case("all") {
                grants.public = true;
            } else if !value.is_empty() {
                grants.accounts.push(value.to_string());
            }
        }
    }
    Ok(grants)
}

/// `GetCallerIdentity`: `GetCallerIdentityResult/Account`.
pub(crate) fn caller_account(body: &str) -> Result<String, Reason> {
    let doc = document(body)?;
    let root = response_root(&doc, "GetCallerIdentity")?;
    path(root, &["GetCallerIdentityResult"])
        .and_then(|result| text(result, "Account"))
        .ok_or_else(|| "no <GetCallerIdentityResult><Account>".to_string())
}

/// `DescribeTags` (EC2): the tag keys, `tagSet/item/key`.
pub(crate) fn ec2_tag_keys(body: &str) -> Result<Vec<String>, Reason> {
    let doc = document(body)?;
    let root = response_root(&doc, "DescribeTags")?;
    Ok(child(root, "tagSet")
        .map(|set| {
            children(set, "item")
                .filter_map(|i| text(i, "key"))
                .collect()
        })
        .unwrap_or_default())
}

/// `ListTagsForResource` (RDS): the tag keys, `ListTagsForResourceResult/TagList/Tag/Key`.
pub(crate) fn rds_tag_keys(body: &str) -> Result<Vec<String>, Reason> {
    let doc = document(body)?;
    let root = response_root(&doc, "ListTagsForResource")?;
    Ok(path(root, &["ListTagsForResourceResult", "TagList"])
        .map(|list| {
            children(list, "Tag")
                .filter_map(|t| text(t, "Key"))
                .collect()
        })
        .unwrap_or_default())
}

/// One rule of `DescribeSecurityGroupRules`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecurityGroupRule {
    pub id: String,
    pub group_id: Option<String>,
    pub is_egress: bool,
    /// `tcp`, `udp`, `icmp`, `-1`… as EC2 reports it.
    pub protocol: String,
    /// `-1` when the protocol has no ports.
    pub from_port: i64,
    pub to_port: i64,
    /// The rule's one source: an IPv4 or IPv6 CIDR, when it is one.
    pub cidr: Option<String>,
    pub tag_keys: Vec<String>,
}

/// `DescribeSecurityGroupRules`: `securityGroupRuleSet/item`.
pub(crate) fn security_group_rules(body: &str) -> Result<Page<SecurityGroupRule>, Reason> {
    let doc = document(body)?;
    let root = response_root(&doc, "DescribeSecurityGroupRules")?;
    let port = |item: Node, name: &str| {
        text(item, name)
            .map(|p| p.parse::<i64>().map_err(|e| format!("<{name}> {p:?}: {e}")))
            .transpose()
            .map(|p| p.unwrap_or(-1))
    };
    let mut items = Vec::new();
    if let Some(set) = child(root, "securityGroupRuleSet") {
        for item in children(set, "item") {
            items.push(SecurityGroupRule {
                id: required(item, "securityGroupRuleId", "security group rule")?,
                group_id: text(item, "groupId"),
                is_egress: text(item, "isEgress").is_some_and(|e| e == "true"),
                protocol: text(item, "ipProtocol").unwrap_or_else(|| "-1".to_string()),
                from_port: port(item, "fromPort")?,
                to_port: port(item, "toPort")?,
                cidr: text(item, "cidrIpv4").or_else(|| text(item, "cidrIpv6")),
                tag_keys: child(item, "tagSet")
                    .map(|set| {
                        children(set, "item")
                            .filter_map(|i| text(i, "key"))
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
    }
    Ok(Page {
        items,
        next: ec2_next_token(root),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    // Fixtures are written for these tests in the shapes the EC2, RDS and STS API references
    // document (namespaces, `<item>` lists, request ids); ids and values are made up.

    const EC2_NS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";
    const RDS_NS: &str = "http://rds.amazonaws.com/doc/2014-10-31/";

    fn describe_snapshots(items: &str, next_token: Option<&str>) -> String {
        let token = next_token.map_or(String::new(), |t| format!("<nextToken>{t}</nextToken>"));
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeSnapshotsResponse xmlns="{EC2_NS}">
    <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>
    <snapshotSet>{items}</snapshotSet>
    {token}
</DescribeSnapshotsResponse>"#
        )
    }

    const TAGGED_SNAPSHOT: &str = r#"
        <item>
            <snapshotId>snap-0a1b2c3d4e5f60718</snapshotId>
            <volumeId>vol-0a1b2c3d4e5f60719</volumeId>
            <status>completed</status>
            <startTime>2024-03-01T10:20:30.000Z</startTime>
            <progress>100%</progress>
            <ownerId>111122223333</ownerId>
            <volumeSize>8</volumeSize>
            <description>Created by CreateImage(i-0123456789abcdef0) for ami-0fedcba9876543210 from vol-0a1b2c3d4e5f60719</description>
            <encrypted>true</encrypted>
            <tagSet>
                <item><key>Name</key><value>nightly</value></item>
            </tagSet>
            <storageTier>standard</storageTier>
        </item>"#;

    #[test]
    fn reads_a_snapshots_page_with_nested_tag_items_and_a_next_token() {
        let body = describe_snapshots(
            &format!("{TAGGED_SNAPSHOT}<item><snapshotId>snap-2</snapshotId><description/></item>"),
            Some("eyJ2IjoiMiIsImMiOiJwYWdlLTIifQ=="),
        );
        let page = snapshots_page(&body).expect("page");
        assert_eq!(
            page.items,
            vec![
                EbsSnapshot {
                    id: "snap-0a1b2c3d4e5f60718".into(),
                    start_time: Some(Utc.with_ymd_and_hms(2024, 3, 1, 10, 20, 30).unwrap()),
                    description: Some("Created by CreateImage(i-0123456789abcdef0) for ami-0fedcba9876543210 from vol-0a1b2c3d4e5f60719".into()),
                },
                EbsSnapshot {
                    id: "snap-2".into(),
                    start_time: None,
                    description: None,
                },
            ]
        );
        assert_eq!(
            page.next.as_deref(),
            Some("eyJ2IjoiMiIsImMiOiJwYWdlLTIifQ==")
        );
    }

    #[test]
    fn an_empty_snapshot_set_and_an_empty_token_end_the_list() {
        for body in [
            describe_snapshots("", Some("")),
            format!(
                r#"<DescribeSnapshotsResponse xmlns="{EC2_NS}"><requestId>r</requestId><snapshotSet/></DescribeSnapshotsResponse>"#
            ),
            format!(
                r#"<DescribeSnapshotsResponse xmlns="{EC2_NS}"><requestId>r</requestId></DescribeSnapshotsResponse>"#
            ),
        ] {
            let page = snapshots_page(&body).expect("page");
            assert_eq!(
                page,
                Page {
                    items: vec![],
                    next: None
                },
                "{body}"
            );
        }
    }

    #[test]
    fn a_snapshot_without_an_id_or_a_foreign_body_is_malformed() {
        let missing_id = describe_snapshots("<item><status>completed</status></item>", None);
        assert_eq!(
            snapshots_page(&missing_id).unwrap_err(),
            "snapshotSet item without <snapshotId>"
        );
        let images = format!(r#"<DescribeImagesResponse xmlns="{EC2_NS}"/>"#);
        assert_eq!(
            snapshots_page(&images).unwrap_err(),
            "expected <DescribeSnapshotsResponse>, got <DescribeImagesResponse>"
        );
        assert!(snapshots_page("<html><body>502 Bad Gateway")
            .unwrap_err()
            .starts_with("not XML"));
        assert!(snapshots_page("").is_err());
    }

    #[test]
    fn reads_an_images_page_with_public_flags_and_block_device_items() {
        let body = format!(
            r#"<DescribeImagesResponse xmlns="{EC2_NS}">
   <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>
   <imagesSet>
      <item>
         <imageId>ami-0abcdef1234567890</imageId>
         <imageLocation>111122223333/web</imageLocation>
         <imageState>available</imageState>
         <imageOwnerId>111122223333</imageOwnerId>
         <creationDate>2024-05-06T07:08:09.000Z</creationDate>
         <isPublic>true</isPublic>
         <architecture>x86_64</architecture>
         <imageType>machine</imageType>
         <blockDeviceMapping>
            <item>
               <deviceName>/dev/xvda</deviceName>
               <ebs><snapshotId>snap-0a1b2c3d4e5f60718</snapshotId><volumeSize>8</volumeSize></ebs>
            </item>
         </blockDeviceMapping>
      </item>
      <item>
         <imageId>ami-0fedcba9876543210</imageId>
         <isPublic>false</isPublic>
      </item>
   </imagesSet>
   <nextToken>next-images</nextToken>
</DescribeImagesResponse>"#
        );
        let page = images_page(&body).expect("page");
        assert_eq!(
            page.items,
            vec![
                MachineImage {
                    id: "ami-0abcdef1234567890".into(),
                    creation_date: Some(Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).unwrap()),
                    is_public: true,
                },
                MachineImage {
                    id: "ami-0fedcba9876543210".into(),
                    creation_date: None,
                    is_public: false,
                },
            ]
        );
        assert_eq!(page.next.as_deref(), Some("next-images"));
    }

    #[test]
    fn reads_db_snapshot_and_cluster_snapshot_pages_with_markers() {
        let body = format!(
            r#"<DescribeDBSnapshotsResponse xmlns="{RDS_NS}">
  <DescribeDBSnapshotsResult>
    <Marker>bWFya2VyLTE=</Marker>
    <DBSnapshots>
      <DBSnapshot>
        <DBSnapshotIdentifier>orders-before-migration</DBSnapshotIdentifier>
        <DBInstanceIdentifier>orders</DBInstanceIdentifier>
        <SnapshotCreateTime>2024-02-03T04:05:06.789Z</SnapshotCreateTime>
        <SnapshotType>manual</SnapshotType>
        <Status>available</Status>
        <DBSnapshotArn>arn:aws:rds:eu-west-1:111122223333:snapshot:Orders-Before-Migration</DBSnapshotArn>
        <TagList/>
      </DBSnapshot>
      <DBSnapshot>
        <DBSnapshotIdentifier>rds:orders-2024-02-03-00-10</DBSnapshotIdentifier>
        <SnapshotType>automated</SnapshotType>
      </DBSnapshot>
    </DBSnapshots>
  </DescribeDBSnapshotsResult>
  <ResponseMetadata><RequestId>0123abcd-4567-89ef-0123-456789abcdef</RequestId></ResponseMetadata>
</DescribeDBSnapshotsResponse>"#
        );
        let page = db_snapshots_page(&body, DbSnapshotFamily::Instance).expect("page");
        assert_eq!(
            page.items,
            vec![
                DbSnapshot {
                    identifier: Some("orders-before-migration".into()),
                    arn: Some(
                        "arn:aws:rds:eu-west-1:111122223333:snapshot:Orders-Before-Migration"
                            .into()
                    ),
                    created: Some(
                        Utc.with_ymd_and_hms(2024, 2, 3, 4, 5, 6).unwrap()
                            + chrono::Duration::milliseconds(789)
                    ),
                    snapshot_type: Some("manual".into()),
                },
                DbSnapshot {
                    identifier: Some("rds:orders-2024-02-03-00-10".into()),
                    arn: None,
                    created: None,
                    snapshot_type: Some("automated".into()),
                },
            ]
        );
        assert_eq!(page.next.as_deref(), Some("bWFya2VyLTE="));

        let cluster = format!(
            r#"<DescribeDBClusterSnapshotsResponse xmlns="{RDS_NS}">
  <DescribeDBClusterSnapshotsResult>
    <DBClusterSnapshots>
      <DBClusterSnapshot>
        <DBClusterSnapshotIdentifier>ledger-q1</DBClusterSnapshotIdentifier>
        <DBClusterSnapshotArn>arn:aws:rds:eu-west-1:111122223333:cluster-snapshot:ledger-q1</DBClusterSnapshotArn>
        <SnapshotCreateTime>2024-04-01T00:00:00Z</SnapshotCreateTime>
        <SnapshotType>manual</SnapshotType>
      </DBClusterSnapshot>
    </DBClusterSnapshots>
  </DescribeDBClusterSnapshotsResult>
  <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>
</DescribeDBClusterSnapshotsResponse>"#
        );
        let page = db_snapshots_page(&cluster, DbSnapshotFamily::Cluster).expect("page");
        assert_eq!(page.next, None);
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].identifier.as_deref(), Some("ledger-q1"));
        assert_eq!(
            page.items[0].arn.as_deref(),
            Some("arn:aws:rds:eu-west-1:111122223333:cluster-snapshot:ledger-q1")
        );
        // The instance reader must not accept the cluster response (and vice versa).
        assert!(db_snapshots_page(&cluster, DbSnapshotFamily::Instance).is_err());
    }

    #[test]
    fn an_empty_db_snapshot_list_is_empty_and_a_missing_result_is_malformed() {
        let empty = format!(
            r#"<DescribeDBSnapshotsResponse xmlns="{RDS_NS}"><DescribeDBSnapshotsResult><DBSnapshots/></DescribeDBSnapshotsResult></DescribeDBSnapshotsResponse>"#
        );
        assert_eq!(
            db_snapshots_page(&empty, DbSnapshotFamily::Instance).expect("page"),
            Page {
                items: vec![],
                next: None
            }
        );
        let no_result = format!(
            r#"<DescribeDBSnapshotsResponse xmlns="{RDS_NS}"></DescribeDBSnapshotsResponse>"#
        );
        assert_eq!(
            db_snapshots_page(&no_result, DbSnapshotFamily::Instance).unwrap_err(),
            "no <DescribeDBSnapshotsResult>"
        );
        let no_ids = format!(
            r#"<DescribeDBSnapshotsResponse xmlns="{RDS_NS}"><DescribeDBSnapshotsResult><DBSnapshots><DBSnapshot><Status>available</Status></DBSnapshot></DBSnapshots></DescribeDBSnapshotsResult></DescribeDBSnapshotsResponse>"#
        );
        assert_eq!(
            db_snapshots_page(&no_ids, DbSnapshotFamily::Instance).unwrap_err(),
            "DBSnapshot without <DBSnapshotIdentifier> or <DBSnapshotArn>"
        );
    }

    #[test]
    fn reads_create_volume_permissions() {
        let body = format!(
            r#"<DescribeSnapshotAttributeResponse xmlns="{EC2_NS}">
   <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>
   <snapshotId>snap-0a1b2c3d4e5f60718</snapshotId>
   <createVolumePermission>
      <item><group>all</group></item>
      <item><userId>999988887777</userId></item>
      <item><userId>111122223333</userId></item>
   </createVolumePermission>
</DescribeSnapshotAttributeResponse>"#
        );
        let grants =
            ec2_permission_grants(&body, "DescribeSnapshotAttribute", "createVolumePermission")
                .expect("grants");
        assert_eq!(
            grants,
            Grants {
                public: true,
                accounts: vec!["999988887777".into(), "111122223333".into()],
                principals: vec![],
            }
        );
    }

    #[test]
    fn a_private_snapshot_has_an_empty_or_absent_permission_list() {
        for list in ["<createVolumePermission/>", ""] {
            let body = format!(
                r#"<DescribeSnapshotAttributeResponse xmlns="{EC2_NS}"><requestId>r</requestId><snapshotId>snap-1</snapshotId>{list}</DescribeSnapshotAttributeResponse>"#
            );
            assert_eq!(
                ec2_permission_grants(&body, "DescribeSnapshotAttribute", "createVolumePermission"),
                Ok(Grants::default())
            );
        }
    }

    #[test]
    fn reads_launch_permissions_with_organizations() {
        let body = format!(
            r#"<DescribeImageAttributeResponse xmlns="{EC2_NS}">
   <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>
   <imageId>ami-0abcdef1234567890</imageId>
   <launchPermission>
      <item><userId>444455556666</userId></item>
      <item><organizationArn>arn:aws:organizations::111122223333:organization/o-abcde12345</organizationArn></item>
      <item><organizationalUnitArn>arn:aws:organizations::111122223333:ou/o-abcde12345/ou-ab12-cdef3456</organizationalUnitArn></item>
   </launchPermission>
</DescribeImageAttributeResponse>"#
        );
        let grants = ec2_permission_grants(&body, "DescribeImageAttribute", "launchPermission")
            .expect("grants");
        assert_eq!(
            grants,
            Grants {
                public: false,
                accounts: vec!["444455556666".into()],
                principals: vec![
                    "arn:aws:organizations::111122223333:organization/o-abcde12345".into(),
                    "arn:aws:organizations::111122223333:ou/o-abcde12345/ou-ab12-cdef3456".into(),
                ],
            }
        );
    }

    #[test]
    fn reads_the_restore_attribute_of_db_and_cluster_snapshots() {
        let body = format!(
            r#"<DescribeDBSnapshotAttributesResponse xmlns="{RDS_NS}">
  <DescribeDBSnapshotAttributesResult>
    <DBSnapshotAttributesResult>
      <DBSnapshotIdentifier>orders-before-migration</DBSnapshotIdentifier>
      <DBSnapshotAttributes>
        <DBSnapshotAttribute>
          <AttributeName>restore</AttributeName>
          <AttributeValues>
            <AttributeValue>999988887777</AttributeValue>
            <AttributeValue>all</AttributeValue>
          </AttributeValues>
        </DBSnapshotAttribute>
        <DBSnapshotAttribute>
          <AttributeName>something-else</AttributeName>
          <AttributeValues><AttributeValue>444455556666</AttributeValue></AttributeValues>
        </DBSnapshotAttribute>
      </DBSnapshotAttributes>
    </DBSnapshotAttributesResult>
  </DescribeDBSnapshotAttributesResult>
  <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>
</DescribeDBSnapshotAttributesResponse>"#
        );
        assert_eq!(
            rds_restore_grants(&body, DbSnapshotFamily::Instance),
            Ok(Grants {
                public: true,
                accounts: vec!["999988887777".into()],
                principals: vec![],
            })
        );

        let cluster_private = format!(
            r#"<DescribeDBClusterSnapshotAttributesResponse xmlns="{RDS_NS}">
  <DescribeDBClusterSnapshotAttributesResult>
    <DBClusterSnapshotAttributesResult>
      <DBClusterSnapshotIdentifier>ledger-q1</DBClusterSnapshotIdentifier>
      <DBClusterSnapshotAttributes>
        <DBClusterSnapshotAttribute>
          <AttributeName>restore</AttributeName>
          <AttributeValues/>
        </DBClusterSnapshotAttribute>
      </DBClusterSnapshotAttributes>
    </DBClusterSnapshotAttributesResult>
  </DescribeDBClusterSnapshotAttributesResult>
</DescribeDBClusterSnapshotAttributesResponse>"#
        );
        assert_eq!(
            rds_restore_grants(&cluster_private, DbSnapshotFamily::Cluster),
            Ok(Grants::default())
        );
    }

    #[test]
    fn reads_the_caller_account() {
        let body = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:sts::111122223333:assumed-role/baseline/session</Arn>
    <UserId>AROAEXAMPLEID:session</UserId>
    <Account>111122223333</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"#;
        assert_eq!(caller_account(body), Ok("111122223333".to_string()));
        assert!(caller_account(
            r#"<GetCallerIdentityResponse><GetCallerIdentityResult/></GetCallerIdentityResponse>"#
        )
        .is_err());
    }

    #[test]
    fn reads_both_error_document_shapes() {
        let ec2 = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>5b1c1a5e-0000-4000-8000-000000000000</RequestID></Response>"#;
        assert_eq!(
            error_document(ec2),
            Some(ErrorDocument {
                code: "RequestLimitExceeded".into(),
                message: "Request limit exceeded.".into(),
            })
        );
        let rds = format!(
            r#"<ErrorResponse xmlns="{RDS_NS}">
  <Error>
    <Type>Sender</Type>
    <Code>DBSnapshotNotFound</Code>
    <Message>DBSnapshot orders-before-migration not found.</Message>
  </Error>
  <RequestId>0123abcd-4567-89ef-0123-456789abcdef</RequestId>
</ErrorResponse>"#
        );
        assert_eq!(
            error_document(&rds),
            Some(ErrorDocument {
                code: "DBSnapshotNotFound".into(),
                message: "DBSnapshot orders-before-migration not found.".into(),
            })
        );
        let sts_without_message = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>Throttling</Code></Error></ErrorResponse>"#;
        assert_eq!(
            error_document(sts_without_message).map(|e| (e.code, e.message)),
            Some(("Throttling".to_string(), String::new()))
        );
        assert_eq!(error_document("<html>Bad Gateway</html>"), None);
        assert_eq!(error_document("not xml at all"), None);
        assert_eq!(error_document("<Response><Errors/></Response>"), None);
    }

    #[test]
    fn reads_security_group_rules_with_their_sources_and_tags() {
        let body = format!(
            r#"<DescribeSecurityGroupRulesResponse xmlns="{EC2_NS}">
    <requestId>c1a2b3c4-0000-4000-8000-000000000001</requestId>
    <securityGroupRuleSet>
        <item>
            <securityGroupRuleId>sgr-0aaa</securityGroupRuleId>
            <groupId>sg-0123</groupId>
            <isEgress>false</isEgress>
            <ipProtocol>tcp</ipProtocol>
            <fromPort>22</fromPort>
            <toPort>22</toPort>
            <cidrIpv4>0.0.0.0/0</cidrIpv4>
            <tagSet><item><key>snapwatch-exempt</key><value>yes</value></item></tagSet>
        </item>
        <item>
            <securityGroupRuleId>sgr-0bbb</securityGroupRuleId>
            <groupId>sg-0123</groupId>
            <isEgress>true</isEgress>
            <ipProtocol>-1</ipProtocol>
            <cidrIpv6>::/0</cidrIpv6>
        </item>
    </securityGroupRuleSet>
    <nextToken>page-2</nextToken>
</DescribeSecurityGroupRulesResponse>"#
        );
        let page = security_group_rules(&body).unwrap();
        assert_eq!(page.next.as_deref(), Some("page-2"));
        assert_eq!(
            page.items,
            vec![
                SecurityGroupRule {
                    id: "sgr-0aaa".into(),
                    group_id: Some("sg-0123".into()),
                    is_egress: false,
                    protocol: "tcp".into(),
                    from_port: 22,
                    to_port: 22,
                    cidr: Some("0.0.0.0/0".into()),
                    tag_keys: vec!["snapwatch-exempt".into()],
                },
                SecurityGroupRule {
                    id: "sgr-0bbb".into(),
                    group_id: Some("sg-0123".into()),
                    is_egress: true,
                    protocol: "-1".into(),
                    from_port: -1,
                    to_port: -1,
                    cidr: Some("::/0".into()),
                    tag_keys: vec![],
                },
            ]
        );
        let bad_port = body.replace("<fromPort>22</fromPort>", "<fromPort>ssh</fromPort>");
        assert!(security_group_rules(&bad_port)
            .unwrap_err()
            .contains("fromPort"));
        assert!(security_group_rules("<DescribeTagsResponse/>").is_err());
    }

    #[test]
    fn reads_tag_keys_of_ec2_and_rds_resources() {
        let ec2 = format!(
            r#"<DescribeTagsResponse xmlns="{EC2_NS}"><requestId>r</requestId><tagSet>
<item><resourceId>snap-1</resourceId><resourceType>snapshot</resourceType><key>snapwatch-exempt</key><value/></item>
</tagSet></DescribeTagsResponse>"#
        );
        assert_eq!(ec2_tag_keys(&ec2).unwrap(), vec!["snapwatch-exempt"]);
        let rds = format!(
            r#"<ListTagsForResourceResponse xmlns="{RDS_NS}"><ListTagsForResourceResult><TagList>
<Tag><Key>team</Key><Value>payroll</Value></Tag><Tag><Key>snapwatch-exempt</Key><Value>1</Value></Tag>
</TagList></ListTagsForResourceResult></ListTagsForResourceResponse>"#
        );
        assert_eq!(
            rds_tag_keys(&rds).unwrap(),
            vec!["team", "snapwatch-exempt"]
        );
        assert!(rds_tag_keys(&ec2).is_err(), "a body meant for another call");
    }
}
