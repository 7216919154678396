"""Structural checks of infra/gcp (no google provider offline, so `terraform validate` cannot run).

The Eventarc triggers must cover exactly the audit-log methods the core consumes: a method the
core parses but no trigger delivers is a silent blind spot, and a trigger for a method the core
ignores only costs invocations.
"""

import os
import re

from conftest import snapwatch_consumed
import shutil
import subprocess
from pathlib import Path

import hcl2
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "infra" / "gcp"


def normalize(value):
    """python-hcl2 (7.x) keeps quotes around keys and string values and marks blocks with
    `__is_block__`; strip both so the checks read like the HCL."""
    if isinstance(value, dict):
        return {unquote(k): normalize(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return unquote(value)


def load_module():
    """Every block of every .tf file in the module, merged per block type."""
    merged = {}
    for path in sorted(MODULE.glob("*.tf")):
        with path.open() as handle:
            parsed = normalize(hcl2.load(handle))
        for block_type, blocks in parsed.items():
            merged.setdefault(block_type, []).extend(blocks)
    return merged


def resources(module, resource_type):
    found = {}
    for block in module.get("resource", []):
        for rtype, named in block.items():
            if rtype == resource_type:
                found.update(named)
    return found


def locals_of(module):
    values = {}
    for block in module.get("locals", []):
        values.update(block)
    return values


def unquote(value):
    """`"text"` → `text`; other values unchanged."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    return value


def core_trigger_methods():
    """What snapwatch_core::parse::gcp::trigger_method_names() returns, via `snapwatch consumed gcp`."""
    methods = set(snapwatch_consumed("gcp"))
    assert methods
    return methods


def criteria(trigger):
    return {unquote(c["attribute"]): unquote(c["value"]) for c in trigger["matching_criteria"]}


def test_each_trigger_method_is_consumed_and_each_consumed_method_has_a_trigger():
    module = load_module()
    methods = [unquote(m) for m in locals_of(module)["trigger_methods"]]
    assert len(methods) == len(set(methods)), "duplicate trigger methods"
    expected = core_trigger_methods()
    assert set(methods) - expected == set(), "triggers for methods the core does not consume"
    assert expected - set(methods) == set(), "consumed methods without a trigger"

    trigger = resources(module, "google_eventarc_trigger")["audit_log"]
    assert "local.trigger_methods" in unquote(trigger["for_each"])
    assert unquote(trigger["location"]) == "global"
    assert criteria(trigger) == {
        "type": "google.cloud.audit.log.v1.written",
        "serviceName": '${startswith(each.value, "cloudsql.") ? "cloudsql.googleapis.com" : "compute.googleapis.com"}',
        "methodName": "${each.value}",
    }
    # Cloud SQL methods carry no API version; every other method is Compute Engine's, under any
    # version prefix or none.
    for method in methods:
        assert method.startswith(
            ("v1.compute.", "beta.compute.", "alpha.compute.", "compute.", "cloudsql.instances.")
        ), method


def test_trigger_names_are_valid_and_distinct():
    module = load_module()
    methods = [unquote(m) for m in locals_of(module)["trigger_methods"]]
    # The name expression in eventarc.tf, evaluated here for every method.
    names = [f"snapwatch-{m.replace('compute.', '').replace('.', '-').lower()}" for m in methods]
    trigger = resources(module, "google_eventarc_trigger")["audit_log"]
    assert 'lower(replace(replace(each.value, "compute.", ""), ".", "-"))' in unquote(trigger["name"])
    assert len(set(names)) == len(names)
    for name in names:
        assert re.fullmatch(r"[a-z][a-z0-9-]{0,62}", name), name


def test_cloud_run_service_scales_to_zero_internally_with_concurrency():
    service = resources(load_module(), "google_cloud_run_v2_service")["snapwatch"]
    assert unquote(service["ingress"]) == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    template = service["template"][0]
    assert template["scaling"][0]["min_instance_count"] == 0
    assert unquote(template["max_instance_request_concurrency"]) == "${var.concurrency}"
    env = {unquote(e["name"]): e for e in template["containers"][0]["env"]}
    for name in ["SNAPWATCH_FIRESTORE_PROJECT", "SNAPWATCH_FIRESTORE_DATABASE", "SNAPWATCH_COLLECTION_PREFIX"]:
        assert name in env, name


def slack_env(container):
    """The (dynamic) env block that carries the Slack webhook: (for_each, content)."""
    for dynamic in container.get("dynamic", []):
        for name, body in dynamic.items():
            content = body["content"][0]
            if name == "env" and unquote(content["name"]) == "SNAPWATCH_SLACK_WEBHOOK_URL":
                return unquote(body["for_each"]), content
    return None, None


def test_the_first_apply_refers_to_no_secret_version_that_does_not_exist():
    """Cloud Run refuses to start a revision whose secret cannot be resolved: the module must
    not refer to `latest` of a secret it created empty (issue 17, GCP 2)."""
    module = load_module()
    container = resources(module, "google_cloud_run_v2_service")["snapwatch"]["template"][0]["containers"][0]
    plain = [e for e in container.get("env", []) if unquote(e["name"]) == "SNAPWATCH_SLACK_WEBHOOK_URL"]
    assert not plain, "the Slack secret is referenced unconditionally"
    for_each, content = slack_env(container)
    assert for_each == "${local.slack_secret_version == null ? [] : [local.slack_secret_version]}"
    ref = content["value_source"][0]["secret_key_ref"][0]
    assert unquote(ref["secret"]) == "${google_secret_manager_secret.slack_webhook.secret_id}"
    assert unquote(ref["version"]) == "${env.value}"

    # The version referenced is the one the module created, or one the operator names; by
    # default (neither given) there is none, so the first apply refers to nothing.
    version = locals_of(module)["slack_secret_version"]
    assert "google_secret_manager_secret_version.slack_webhook[*].version" in version
    assert "var.slack_secret_version" in version
    variables = {}
    for block in module["variable"]:
        variables.update(block)
    assert variables["slack_secret_version"]["default"] is None
    assert variables["slack_webhook_url"]["default"] is None
    assert variables["slack_webhook_url"]["sensitive"] is True
    created = resources(module, "google_secret_manager_secret_version")["slack_webhook"]
    assert unquote(created["count"]) == "${local.slack_from_variable ? 1 : 0}"
    assert unquote(created["secret_data"]) == "${var.slack_webhook_url}"
    assert "nonsensitive(var.slack_webhook_url != null)" in locals_of(module)["slack_from_variable"]


def test_every_secret_is_referenced_only_after_it_can_exist_and_be_read():
    """The service depends on the secret version it reads and on the reader grant."""
    service = resources(load_module(), "google_cloud_run_v2_service")["snapwatch"]
    after = {unquote(d) for d in service["depends_on"]}
    assert after >= {
        "${google_secret_manager_secret_iam_member.slack_reader}",
        "${google_secret_manager_secret_version.slack_webhook}",
    }, after


def test_no_audit_config_is_overwritten_and_no_billable_data_access_log_turned_on():
    """Admin Activity logs (every consumed method) are always on; `google_project_iam_audit_config`
    is authoritative for its service and ADMIN_READ is billable (issue 17, GCP 3)."""
    module = load_module()
    for kind in ("google_project_iam_audit_config", "google_organization_iam_audit_config",
                 "google_folder_iam_audit_config", "google_project_iam_policy"):
        assert not resources(module, kind), f"the module must not own {kind}"
    for path in MODULE.rglob("*.tf"):
        assert "ADMIN_READ" not in path.read_text(), path


def test_the_issue_named_method_variants_are_consumed_and_triggered():
    """alpha.*, regionDisks.* and the unversioned methods the audit catalog lists (issue 17, GCP 4);
    instances.bulkInsert is not consumed, so it has no trigger and the README says so."""
    methods = {unquote(m) for m in locals_of(load_module())["trigger_methods"]}
    for method in ["alpha.compute.disks.createSnapshot", "alpha.compute.snapshots.setIamPolicy",
                   "compute.instances.insert", "compute.snapshots.insert",
                   "v1.compute.regionDisks.insert", "beta.compute.regionDisks.createSnapshot",
                   "v1.compute.regionDisks.setIamPolicy"]:
        assert method in methods, method
    consumed = core_trigger_methods()
    assert not [m for m in methods | consumed if "bulkInsert" in m]
    assert "instances.bulkInsert" in (ROOT / "README.md").read_text()


def test_admin_ports_is_a_variable_passed_to_the_service():
    module = load_module()
    variables = {}
    for block in module["variable"]:
        variables.update(block)
    assert variables["admin_ports"]["default"] == [22, 3389]
    container = resources(module, "google_cloud_run_v2_service")["snapwatch"]["template"][0]["containers"][0]
    env = {unquote(e["name"]): unquote(e.get("value")) for e in container["env"]}
    assert env["SNAPWATCH_ADMIN_PORTS"] == '${join(",", [for port in var.admin_ports : tostring(port)])}'


def test_service_account_holds_only_the_roles_it_needs():
    module = load_module()
    project_roles = {unquote(r["role"]) for r in resources(module, "google_project_iam_member").values()}
    # The baseline's read-only custom role (test_baseline_role_is_exactly_the_listing_calls) and
    # the opt-in response's (test_the_response_role_is_exactly_the_undo_calls_and_absent_when_off).
    assert project_roles == {"roles/datastore.user", "roles/eventarc.eventReceiver", "${each.value.name}"}
    invoker = resources(module, "google_cloud_run_v2_service_iam_member")
    assert {name: unquote(r["role"]) for name, r in invoker.items()} == {
        "trigger_invoker": "roles/run.invoker",
        "baseline_invoker": "roles/run.invoker",
    }
    secret = resources(module, "google_secret_manager_secret_iam_member")
    assert [unquote(r["role"]) for r in secret.values()] == ["roles/secretmanager.secretAccessor"]


def test_every_collection_has_a_ttl_policy_on_expires_at():
    module = load_module()
    collections = locals_of(module)["collections"]
    assert set(collections) == {"facts", "alerts", "rejects"}
    ttl = resources(module, "google_firestore_field")["ttl"]
    assert unquote(ttl["field"]) == "expires_at"
    assert "ttl_config" in ttl
    assert "local.collections" in unquote(ttl["for_each"])


def test_terraform_fmt_is_clean():
    if shutil.which("terraform") is None:
        pytest.skip("SKIPPED LOUDLY: terraform is not installed on this machine")
    env = dict(os.environ, TF_CLI_CONFIG_FILE=os.devnull)
    result = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", str(MODULE)],
        capture_output=True, text=True, env=env,
    )
    assert result.returncode == 0, f"terraform fmt would change: {result.stdout}{result.stderr}"


def test_checkov_finds_no_unexplained_failure():
    checkov = ROOT / ".tools" / "checkov" / "bin" / "checkov"
    if not checkov.exists():
        pytest.skip(f"SKIPPED LOUDLY: {checkov} is missing: run `make tools`")
    result = subprocess.run(
        [str(checkov), "-d", str(MODULE), "--framework", "terraform",
         "--skip-download", "--compact", "--quiet"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_baseline_role_is_exactly_the_listing_calls():
    """The custom role holds the list and getIamPolicy permission of each collection the GCP
    listing reads (shared/gcp-inventory), nothing else, and goes to the service's account."""
    module = load_module()
    permissions = locals_of(module)["baseline_permissions"]
    collections = ["disks", "images", "machineImages", "snapshots"]
    assert sorted(permissions) == sorted(
        f"compute.{c}.{verb}" for c in collections for verb in ("list", "getIamPolicy")
    )
    role = resources(module, "google_project_iam_custom_role")["baseline_reader"]
    assert unquote(role["permissions"]) == "${local.baseline_permissions}"
    assert "local.baseline_enabled" in unquote(role["for_each"])
    grant = resources(module, "google_project_iam_member")["baseline_reader"]
    assert unquote(grant["member"]) == "serviceAccount:${google_service_account.snapwatch.email}"


def test_baseline_is_opt_in_and_scheduled_with_an_oidc_token_of_its_own_account():
    module = load_module()
    variables = {}
    for block in module["variable"]:
        variables.update(block)
    assert variables["baseline_enabled"]["default"] is False
    invoker = resources(module, "google_service_account")["baseline_invoker"]
    job = resources(module, "google_cloud_scheduler_job")["baseline"]
    grant = resources(module, "google_cloud_run_v2_service_iam_member")["baseline_invoker"]
    for gated in (invoker, job, grant):
        assert unquote(gated["count"]) == "${local.baseline_enabled ? 1 : 0}"
    assert unquote(grant["member"]) == "serviceAccount:${google_service_account.baseline_invoker[0].email}"
    target = job["http_target"][0]
    assert unquote(target["http_method"]) == "POST"
    assert unquote(target["uri"]).endswith("/baseline")
    token = target["oidc_token"][0]
    assert unquote(token["service_account_email"]) == "${google_service_account.baseline_invoker[0].email}"
    assert unquote(token["audience"]) == "${google_cloud_run_v2_service.snapwatch.uri}"
    assert unquote(job["schedule"]) == "${var.baseline_schedule}"
    container = resources(module, "google_cloud_run_v2_service")["snapwatch"]["template"][0]["containers"][0]
    names = [unquote(d["env"]["content"][0]["name"]) for d in container.get("dynamic", []) if "env" in d]
    assert "SNAPWATCH_BASELINE_PROJECTS" in names


def test_the_service_requires_authentication_so_cloud_run_checks_the_oidc_token():
    """/baseline trusts Cloud Run to have verified the scheduler's OIDC token and invoker role:
    that holds only while no binding lets unauthenticated callers invoke the service."""
    module = load_module()
    for rtype in ("google_cloud_run_v2_service_iam_member", "google_cloud_run_v2_service_iam_binding",
                  "google_cloud_run_v2_service_iam_policy", "google_cloud_run_service_iam_member"):
        for name, body in resources(module, rtype).items():
            members = [unquote(body.get("member", ""))] + [unquote(m) for m in body.get("members", [])]
            assert not {"allUsers", "allAuthenticatedUsers"} & set(members), (rtype, name)
    service = resources(module, "google_cloud_run_v2_service")["snapwatch"]
    assert unquote(service.get("invoker_iam_disabled", False)) in (False, "false")


SHARED = ("snapshots", "images", "disks")  # what the core reads shares of (regional disks: compute.disks.*)
RESPONSE_READS = {
    "snapshot.public": {f"compute.{c}.{v}" for c in SHARED for v in ("get", "getIamPolicy")},
    "snapshot.shared-external": {f"compute.{c}.{v}" for c in SHARED for v in ("get", "getIamPolicy")},
    "chain.exposed-restore": {"compute.firewalls.get", "compute.globalOperations.get"},
}
RESPONSE_WRITES = {
    "snapshot.public": {f"compute.{c}.setIamPolicy" for c in SHARED},
    "snapshot.shared-external": {f"compute.{c}.setIamPolicy" for c in SHARED},
    "chain.exposed-restore": {"compute.firewalls.update", "compute.networks.updatePolicy"},
}


def response_permissions(module, modes):
    """The custom role's permissions for `modes` ({rule: mode}) as response.tf's locals compute
    them, or None when no role is created (evaluated here: no google provider offline)."""
    values = locals_of(module)
    assert unquote(values["response_active"]) == (
        '${sort([for rule, mode in var.response_modes : rule if mode != "off"])}'
    )
    assert unquote(values["response_enforced"]) == (
        '${sort([for rule, mode in var.response_modes : rule if mode == "enforce"])}'
    )
    active = [rule for rule, mode in modes.items() if mode != "off"]
    if not active:
        return None
    reads = {rule: set(p) for rule, p in values["response_reads"].items()}
    writes = {rule: set(p) for rule, p in values["response_writes"].items()}
    granted = set()
    for rule in active:
        granted |= reads[rule]
        if modes[rule] == "enforce":
            granted |= writes[rule]
    return granted


def test_the_response_role_is_exactly_the_undo_calls_and_absent_when_off():
    module = load_module()
    values = locals_of(module)
    assert {r: set(p) for r, p in values["response_reads"].items()} == RESPONSE_READS
    assert {r: set(p) for r, p in values["response_writes"].items()} == RESPONSE_WRITES
    variables = {}
    for block in module["variable"]:
        variables.update(block)
    assert variables["response_modes"]["default"] == {}
    # Off by default: no role, no binding.
    assert response_permissions(module, {}) is None
    assert response_permissions(module, {"snapshot.public": "off"}) is None
    # Dry run: the re-reads only, never a write.
    dry = response_permissions(module, {"snapshot.public": "dry-run", "chain.exposed-restore": "dry-run"})
    assert not any(p.endswith((".setIamPolicy", ".update", ".updatePolicy")) for p in dry), dry
    assert response_permissions(module, {"chain.exposed-restore": "enforce"}) == (
        RESPONSE_READS["chain.exposed-restore"] | RESPONSE_WRITES["chain.exposed-restore"]
    )
    role = resources(module, "google_project_iam_custom_role")["response"]
    assert unquote(role["permissions"]) == "${local.response_permissions}"
    assert unquote(role["for_each"]) == (
        "${length(local.response_active) > 0 ? toset(local.response_projects) : toset([])}"
    )
    grant = resources(module, "google_project_iam_member")["response"]
    assert unquote(grant["for_each"]) == "${google_project_iam_custom_role.response}"
    assert unquote(grant["member"]) == "serviceAccount:${google_service_account.snapwatch.email}"


def test_the_response_modes_reach_the_service_only_when_set():
    module = load_module()
    assert unquote(locals_of(module)["response_setting"]) == (
        '${join(",", [for rule, mode in var.response_modes : "${rule}=${mode}" if mode != "off"])}'
    )
    container = resources(module, "google_cloud_run_v2_service")["snapwatch"]["template"][0]["containers"][0]
    dynamic = [d["env"] for d in container.get("dynamic", []) if "env" in d]
    response = [d for d in dynamic if unquote(d["content"][0]["name"]) == "SNAPWATCH_RESPONSE"]
    assert len(response) == 1
    assert unquote(response[0]["for_each"]) == '${local.response_setting == "" ? [] : [local.response_setting]}'
