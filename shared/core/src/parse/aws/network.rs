//! Network exposure: security-group ingress rules and instance group membership.

use super::ec2::{network_group, GroupRef};
use super::shapes::{lenient_int, lenient_string, list, one_or_many, present, section};
use super::{Sections, REQUEST, RESPONSE};
use crate::model::{Fact, PortRange, Protocol, Resource, ResourceKind};
use crate::parse::ParseError;
use serde::Deserialize;

type Facts = Result<Vec<Fact>, ParseError>;

// ---- AuthorizeSecurityGroupIngress ---------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct IngressRequest {
    group_id: Option<String>,
    group_name: Option<String>,
    #[serde(deserialize_with = "list")]
    ip_permissions: Vec<IpPermission>,
    // The legacy flat form: one CIDR, one protocol, one port range.
    cidr_ip: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    ip_protocol: Option<String>,
    #[serde(deserialize_with = "lenient_int")]
    from_port: Option<i64>,
    #[serde(deserialize_with = "lenient_int")]
    to_port: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct IpPermission {
    #[serde(deserialize_with = "lenient_string")]
    ip_protocol: Option<String>,
    #[serde(deserialize_with = "lenient_int")]
    from_port: Option<i64>,
    #[serde(deserialize_with = "lenient_int")]
    to_port: Option<i64>,
    #[serde(deserialize_with = "list")]
    ip_ranges: Vec<IpRange>,
    #[serde(deserialize_with = "list")]
    ipv6_ranges: Vec<Ipv6Range>,
    #[serde(deserialize_with = "list")]
    prefix_list_ids: Vec<PrefixListRef>,
    #[serde(deserialize_with = "list")]
    groups: Vec<GroupRef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct IpRange {
    cidr_ip: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Ipv6Range {
    cidr_ipv6: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct PrefixListRef {
    prefix_list_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct IngressResponse {
    #[serde(deserialize_with = "list")]
    security_group_rule_set: Vec<SecurityGroupRule>,
}

/// One rule as EC2 created it: exactly one source per rule.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SecurityGroupRule {
    group_id: Option<String>,
    security_group_rule_id: Option<String>,
    is_egress: Option<bool>,
    #[serde(deserialize_with = "lenient_string")]
    ip_protocol: Option<String>,
    #[serde(deserialize_with = "lenient_int")]
    from_port: Option<i64>,
    #[serde(deserialize_with = "lenient_int")]
    to_port: Option<i64>,
    cidr_ipv4: Option<String>,
    cidr_ipv6: Option<String>,
    prefix_list_id: Option<String>,
    referenced_group_info: Option<GroupRef>,
}

/// One `IngressOpened` per permission. The response's rule set is what EC2 actually created,
/// so it wins; older records only have the request, in the `ipPermissions` or the legacy flat
/// form.
pub(super) fn authorize_ingress(sections: &Sections) -> Facts {
    let request: IngressRequest = section(sections.request, REQUEST)?;
    let response: IngressResponse = section(sections.response, RESPONSE)?;
    let request_group = present(&request.group_id).or(present(&request.group_name));

    let created: Vec<&SecurityGroupRule> = response
        .security_group_rule_set
        .iter()
        .filter(|rule| rule.is_egress != Some(true))
        .collect();
    if !created.is_empty() {
        let mut facts = Vec::new();
        for rule in created {
            let Some(group_id) = present(&rule.group_id).or(request_group) else {
                continue;
            };
            let sources: Vec<String> = [
                present(&rule.cidr_ipv4),
                present(&rule.cidr_ipv6),
                present(&rule.prefix_list_id),
                rule.referenced_group_info.as_ref().and_then(GroupRef::id),
            ]
            .into_iter()
            .flatten()
            .map(str::to_owned)
            .collect();
            facts.push(ingress(
                group_id,
                rule.ip_protocol.as_deref(),
                rule.from_port,
                rule.to_port,
                sources,
                present(&rule.security_group_rule_id),
            )?);
        }
        return Ok(facts);
    }

    let Some(group_id) = request_group else {
        return Ok(Vec::new());
    };
    if !request.ip_permissions.is_empty() {
        let mut facts = Vec::new();
        for permission in &request.ip_permissions {
            let sources: Vec<String> = permission
                .ip_ranges
                .iter()
                .filter_map(|r| present(&r.cidr_ip))
                .chain(
                    permission
                        .ipv6_ranges
                        .iter()
                        .filter_map(|r| present(&r.cidr_ipv6)),
                )
                .chain(
                    permission
                        .prefix_list_ids
                        .iter()
                        .filter_map(|p| present(&p.prefix_list_id)),
                )
                .chain(permission.groups.iter().filter_map(GroupRef::id))
                .map(str::to_owned)
                .collect();
            // A permission with no source opens nothing.
            if sources.is_empty() {
                continue;
            }
            facts.push(ingress(
                group_id,
                permission.ip_protocol.as_deref(),
                permission.from_port,
                permission.to_port,
                sources,
                None,
            )?);
        }
        return Ok(facts);
    }

    match present(&request.cidr_ip) {
        Some(cidr) => Ok(vec![ingress(
            group_id,
            request.ip_protocol.as_deref(),
            request.from_port,
            request.to_port,
            vec![cidr.to_owned()],
            None,
        )?]),
        None => Ok(Vec::new()),
    }
}

fn ingress(
    group_id: &str,
    protocol: Option<&str>,
    from_port: Option<i64>,
    to_port: Option<i64>,
    sources: Vec<String>,
    rule: Option<&str>,
) -> Result<Fact, ParseError> {
    let (protocol, ports) = protocol_and_ports(protocol, from_port, to_port)?;
    Ok(Fact::IngressOpened {
        group: network_group(group_id),
        protocol,
        ports,
        sources,
        target_tags: Vec::new(),
        rule: rule.map(str::to_owned),
    })
}

/// EC2 protocols come as names or IANA numbers; `-1` is every protocol and every port.
/// For TCP/UDP a missing or `-1` port means every port. ICMP's "ports" are type and code,
/// so other protocols carry no port range.
fn protocol_and_ports(
    protocol: Option<&str>,
    from_port: Option<i64>,
    to_port: Option<i64>,
) -> Result<(Protocol, Vec<PortRange>), ParseError> {
    let protocol = protocol
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .ok_or(ParseError::MissingField("ipProtocol"))?;
    let protocol = match protocol.to_ascii_lowercase().as_str() {
        "-1" | "all" => return Ok((Protocol::All, vec![PortRange::ALL])),
        "tcp" | "6" => Protocol::Tcp,
        "udp" | "17" => Protocol::Udp,
        _ => return Ok((Protocol::Other, Vec::new())),
    };
    let from = match from_port {
        None | Some(-1) => return Ok((protocol, vec![PortRange::ALL])),
        Some(port) => port_number("fromPort", port)?,
    };
    let to = match to_port {
        None => from,
        Some(-1) => u16::MAX,
        Some(port) => port_number("toPort", port)?,
    };
    if to < from {
        return Err(ParseError::InvalidField {
            field: "toPort",
            reason: format!("port range {from}-{to} ends before it starts"),
        });
    }
    Ok((protocol, vec![PortRange { from, to }]))
}

fn port_number(field: &'static str, port: i64) -> Result<u16, ParseError> {
    u16::try_from(port).map_err(|_| ParseError::InvalidField {
        field,
        reason: format!("{port} is not a port number"),
    })
}

// ---- ModifySecurityGroupRules --------------------------------------------------------------

/// CloudTrail logs this newer call in the query API's own casing, wrapped in
/// `ModifySecurityGroupRulesRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ModifyRulesParameters {
    #[serde(rename = "ModifySecurityGroupRulesRequest")]
    request: Option<ModifyRulesRequest>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ModifyRulesRequest {
    #[serde(rename = "GroupId")]
    group_id: Option<String>,
    #[serde(rename = "SecurityGroupRule", deserialize_with = "one_or_many")]
    rules: Vec<RuleUpdate>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuleUpdate {
    #[serde(rename = "SecurityGroupRuleId")]
    rule_id: Option<String>,
    #[serde(rename = "SecurityGroupRule")]
    rule: Option<RuleRequest>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuleRequest {
    #[serde(rename = "IpProtocol", deserialize_with = "lenient_string")]
    ip_protocol: Option<String>,
    #[serde(rename = "FromPort", deserialize_with = "lenient_int")]
    from_port: Option<i64>,
    #[serde(rename = "ToPort", deserialize_with = "lenient_int")]
    to_port: Option<i64>,
    #[serde(rename = "CidrIpv4")]
    cidr_ipv4: Option<String>,
    #[serde(rename = "CidrIpv6")]
    cidr_ipv6: Option<String>,
    #[serde(rename = "PrefixListId")]
    prefix_list_id: Option<String>,
    #[serde(rename = "ReferencedGroupId")]
    referenced_group_id: Option<String>,
}

/// ModifySecurityGroupRules rewrites existing rules in place: a rule changed to an internet
/// source opens the group as an `AuthorizeSecurityGroupIngress` would. The record does not say
/// whether a rule is inbound or outbound, so every rewritten rule counts as inbound.
pub(super) fn modify_security_group_rules(sections: &Sections) -> Facts {
    let parameters: ModifyRulesParameters = section(sections.request, REQUEST)?;
    let Some(request) = parameters.request else {
        return Ok(Vec::new());
    };
    let Some(group_id) = present(&request.group_id) else {
        return Ok(Vec::new());
    };
    let mut facts = Vec::new();
    for update in &request.rules {
        let Some(rule) = &update.rule else { continue };
        let sources: Vec<String> = [
            present(&rule.cidr_ipv4),
            present(&rule.cidr_ipv6),
            present(&rule.prefix_list_id),
            present(&rule.referenced_group_id),
        ]
        .into_iter()
        .flatten()
        .map(str::to_owned)
        .collect();
        if sources.is_empty() {
            continue;
        }
        facts.push(ingress(
            group_id,
            rule.ip_protocol.as_deref(),
            rule.from_port,
            rule.to_port,
            sources,
            present(&update.rule_id),
        )?);
    }
    Ok(facts)
}

// ---- ModifyInstanceAttribute ---------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ModifyInstanceAttributeRequest {
    instance_id: Option<String>,
    #[serde(deserialize_with = "list")]
    group_set: Vec<GroupRef>,
}

/// Replacing an instance's security groups joins it to each new group.
pub(super) fn modify_instance_attribute(sections: &Sections) -> Facts {
    let request: ModifyInstanceAttributeRequest = section(sections.request, REQUEST)?;
    let Some(instance_id) = present(&request.instance_id) else {
        return Ok(Vec::new());
    };
    let member = Resource::new(ResourceKind::Instance, instance_id);
    let mut groups: Vec<Resource> = Vec::new();
    for group in request.group_set.iter().filter_map(GroupRef::id) {
        let group = network_group(group);
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    Ok(groups
        .into_iter()
        .map(|group| Fact::NetworkMember {
            member: member.clone(),
            group,
            tags: Vec::new(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(from: u16, to: u16) -> PortRange {
        PortRange { from, to }
    }

    /// One row: logged protocol, fromPort, toPort → expected protocol and ports.
    type Case = (
        &'static str,
        Option<i64>,
        Option<i64>,
        Protocol,
        Vec<PortRange>,
    );

    #[test]
    fn protocols_and_ports_follow_ec2_semantics() {
        let cases: Vec<Case> = vec![
            ("-1", None, None, Protocol::All, vec![PortRange::ALL]),
            (
                "all",
                Some(22),
                Some(22),
                Protocol::All,
                vec![PortRange::ALL],
            ),
            (
                "tcp",
                Some(22),
                Some(22),
                Protocol::Tcp,
                vec![range(22, 22)],
            ),
            (
                "TCP",
                Some(0),
                Some(65535),
                Protocol::Tcp,
                vec![range(0, 65535)],
            ),
            (
                "6",
                Some(3389),
                None,
                Protocol::Tcp,
                vec![range(3389, 3389)],
            ),
            (
                "udp",
                Some(-1),
                Some(-1),
                Protocol::Udp,
                vec![PortRange::ALL],
            ),
            ("17", None, None, Protocol::Udp, vec![PortRange::ALL]),
            (
                "tcp",
                Some(1024),
                Some(-1),
                Protocol::Tcp,
                vec![range(1024, 65535)],
            ),
            ("icmp", Some(8), Some(-1), Protocol::Other, vec![]),
            ("58", Some(-1), Some(-1), Protocol::Other, vec![]),
        ];
        for (protocol, from, to, want_protocol, want_ports) in cases {
            let got = protocol_and_ports(Some(protocol), from, to).unwrap();
            assert_eq!(
                got,
                (want_protocol, want_ports),
                "{protocol} {from:?} {to:?}"
            );
        }
    }

    #[test]
    fn impossible_ports_are_errors() {
        assert!(matches!(
            protocol_and_ports(Some("tcp"), Some(70000), Some(70000)),
            Err(ParseError::InvalidField {
                field: "fromPort",
                ..
            })
        ));
        assert!(matches!(
            protocol_and_ports(Some("tcp"), Some(22), Some(-5)),
            Err(ParseError::InvalidField {
                field: "toPort",
                ..
            })
        ));
        assert!(matches!(
            protocol_and_ports(Some("tcp"), Some(443), Some(80)),
            Err(ParseError::InvalidField {
                field: "toPort",
                ..
            })
        ));
        assert!(matches!(
            protocol_and_ports(None, Some(22), Some(22)),
            Err(ParseError::MissingField("ipProtocol"))
        ));
    }
}
