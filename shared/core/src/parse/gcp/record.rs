//! Our own permissive serde types for a Cloud Audit Log `LogEntry` and the request bodies the
//! chain reads. Every field is optional and read leniently: a field of an unexpected type (the
//! `"..."` placeholders of abridged samples, a string where an object belongs) reads as absent
//! instead of rejecting the whole record.

use serde::de::{DeserializeOwned, Deserializer};
use serde::Deserialize;
use serde_json::Value;

/// Reads a field as `T`, or as absent when its JSON does not fit `T`.
pub(super) fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

/// Reads a JSON array, keeping the elements that fit `T`; anything else reads as empty.
pub(super) fn lenient_list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = Value::deserialize(deserializer)?;
    Ok(match value {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|item| serde_json::from_value(item).ok())
            .collect(),
        _ => Vec::new(),
    })
}

/// Reads a request body as `T`; a body that is not an object reads as the empty request.
pub(super) fn request_as<T: DeserializeOwned + Default>(request: Option<&Value>) -> T {
    request
        .filter(|body| body.is_object())
        .and_then(|body| serde_json::from_value(body.clone()).ok())
        .unwrap_or_default()
}

/// One Cloud Logging `LogEntry`. The lower-case aliases are the spellings some log exporters
/// (e.g. SIEM normalisers) write.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct LogEntry {
    #[serde(alias = "insertid", deserialize_with = "lenient")]
    pub insert_id: Option<String>,
    #[serde(alias = "logname", deserialize_with = "lenient")]
    pub log_name: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub timestamp: Option<String>,
    /// When Cloud Logging received the entry: the time of a record shortened without
    /// `timestamp`.
    #[serde(alias = "receivetimestamp", deserialize_with = "lenient")]
    pub receive_timestamp: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub proto_payload: Option<AuditLog>,
    #[serde(deserialize_with = "lenient")]
    pub resource: Option<MonitoredResource>,
    #[serde(deserialize_with = "lenient")]
    pub operation: Option<Operation>,
}

/// `protoPayload`: a `google.cloud.audit.AuditLog`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct AuditLog {
    #[serde(deserialize_with = "lenient")]
    pub method_name: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub resource_name: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub authentication_info: Option<AuthenticationInfo>,
    #[serde(deserialize_with = "lenient")]
    pub request_metadata: Option<RequestMetadata>,
    #[serde(deserialize_with = "lenient")]
    pub resource_location: Option<ResourceLocation>,
    /// `google.rpc.Status`; kept raw because exporters write `code` as a number or a string.
    #[serde(deserialize_with = "lenient")]
    pub status: Option<Value>,
    #[serde(deserialize_with = "lenient")]
    pub request: Option<Value>,
    #[serde(deserialize_with = "lenient")]
    pub response: Option<Value>,
    #[serde(deserialize_with = "lenient")]
    pub metadata: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct AuthenticationInfo {
    #[serde(deserialize_with = "lenient")]
    pub principal_email: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub principal_subject: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct RequestMetadata {
    #[serde(alias = "callerIP", deserialize_with = "lenient")]
    pub caller_ip: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct ResourceLocation {
    #[serde(deserialize_with = "lenient_list")]
    pub current_locations: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct MonitoredResource {
    #[serde(deserialize_with = "lenient")]
    pub labels: Option<ResourceLabels>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ResourceLabels {
    #[serde(deserialize_with = "lenient")]
    pub project_id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub zone: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub region: Option<String>,
}

/// `LogEntryOperation`: long-running operations log a `first` and a `last` record.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Operation {
    #[serde(deserialize_with = "lenient")]
    pub first: Option<bool>,
    #[serde(deserialize_with = "lenient")]
    pub last: Option<bool>,
}

/// An Eventarc CloudEvent in structured content mode.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct CloudEvent {
    #[serde(deserialize_with = "lenient")]
    pub specversion: Option<String>,
    #[serde(rename = "type", deserialize_with = "lenient")]
    pub event_type: Option<String>,
    pub data: Option<Value>,
}

// ---- request bodies -------------------------------------------------------------------------

/// `snapshots.insert`, `disks.createSnapshot`, `disks.insert`, `images.insert`: the name of
/// the new resource and where its data comes from.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct CreateRequest {
    #[serde(deserialize_with = "lenient")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub source_disk: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub source_snapshot: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub source_image: Option<String>,
}

/// `*.setIamPolicy`. Compute's `GlobalSetPolicyRequest` carries the policy, and may also carry
/// flattened `bindings` beside it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct SetIamPolicyRequest {
    #[serde(deserialize_with = "lenient")]
    pub policy: Option<Policy>,
    #[serde(deserialize_with = "lenient_list")]
    pub bindings: Vec<Binding>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Policy {
    #[serde(deserialize_with = "lenient_list")]
    pub bindings: Vec<Binding>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Binding {
    #[serde(deserialize_with = "lenient_list")]
    pub members: Vec<String>,
}

/// `instances.insert`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct InstanceInsertRequest {
    #[serde(deserialize_with = "lenient")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient_list")]
    pub disks: Vec<AttachedDisk>,
    #[serde(deserialize_with = "lenient_list")]
    pub network_interfaces: Vec<NetworkInterface>,
    #[serde(deserialize_with = "lenient")]
    pub tags: Option<Tags>,
    #[serde(deserialize_with = "lenient_list")]
    pub service_accounts: Vec<ServiceAccount>,
}

/// An entry of `instances.insert` `disks[]`, and the body of `instances.attachDisk`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct AttachedDisk {
    /// An existing disk.
    #[serde(deserialize_with = "lenient")]
    pub source: Option<String>,
    /// A new disk created with the instance.
    #[serde(deserialize_with = "lenient")]
    pub initialize_params: Option<CreateRequest>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct NetworkInterface {
    #[serde(deserialize_with = "lenient")]
    pub network: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub subnetwork: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Tags {
    #[serde(deserialize_with = "lenient_list")]
    pub items: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ServiceAccount {
    #[serde(deserialize_with = "lenient")]
    pub email: Option<String>,
}

/// `firewalls.insert` / `patch` / `update`. The audit log writes the repeated fields with the
/// proto's plural names (`alloweds`, `denieds`); the REST body uses `allowed` / `denied`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct FirewallRequest {
    #[serde(deserialize_with = "lenient")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub network: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub direction: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub disabled: Option<bool>,
    #[serde(deserialize_with = "lenient_list")]
    pub alloweds: Vec<FirewallAllowed>,
    #[serde(deserialize_with = "lenient_list")]
    pub allowed: Vec<FirewallAllowed>,
    #[serde(deserialize_with = "lenient_list")]
    pub source_ranges: Vec<String>,
    #[serde(deserialize_with = "lenient_list")]
    pub source_tags: Vec<String>,
    #[serde(deserialize_with = "lenient_list")]
    pub source_service_accounts: Vec<String>,
    #[serde(deserialize_with = "lenient_list")]
    pub target_tags: Vec<String>,
    #[serde(deserialize_with = "lenient_list")]
    pub target_service_accounts: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct FirewallAllowed {
    #[serde(
        rename = "IPProtocol",
        alias = "ipProtocol",
        deserialize_with = "lenient"
    )]
    pub ip_protocol: Option<String>,
    #[serde(deserialize_with = "lenient_list")]
    pub ports: Vec<String>,
}

/// A Cloud SQL Admin request as the audit log writes it: the path parameters beside the body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct SqlRequest {
    #[serde(deserialize_with = "lenient")]
    pub project: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub instance: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub body: Option<SqlBody>,
}

/// The body of `instances.create`/`update` (a `DatabaseInstance`), `restoreBackup` and `clone`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct SqlBody {
    #[serde(deserialize_with = "lenient")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub settings: Option<SqlSettings>,
    #[serde(deserialize_with = "lenient")]
    pub restore_backup_context: Option<RestoreBackupContext>,
    /// The newer form: a backup resource name (`projects/<p>/backups/<id>`).
    #[serde(deserialize_with = "lenient")]
    pub backup: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub clone_context: Option<CloneContext>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct SqlSettings {
    #[serde(deserialize_with = "lenient")]
    pub ip_configuration: Option<IpConfiguration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct IpConfiguration {
    #[serde(deserialize_with = "lenient")]
    pub ipv4_enabled: Option<bool>,
    #[serde(deserialize_with = "lenient_list")]
    pub authorized_networks: Vec<AclEntry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct AclEntry {
    #[serde(deserialize_with = "lenient")]
    pub value: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct RestoreBackupContext {
    #[serde(deserialize_with = "lenient")]
    pub project: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub instance_id: Option<String>,
    /// An int64: logged as a string or a number.
    pub backup_run_id: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct CloneContext {
    #[serde(deserialize_with = "lenient")]
    pub destination_instance_name: Option<String>,
}
