"""Structural checks of infra/azure: the pieces the detector depends on are wired to each other.

`terraform validate` cannot run here (no azurerm provider offline), so these tests read the HCL
with python-hcl2 and check the references themselves: the Activity Log diagnostic setting streams
to the hub the function listens on, the app settings name what the Rust handler reads and what
the function.json bindings expect, and the identity's roles are exactly the narrow ones.

Run: .tools/venv/bin/python -m pytest tests/infra/test_azure.py
"""

import json
import re

from conftest import snapwatch_consumed
from pathlib import Path

import hcl2
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "infra" / "azure"
APP = ROOT / "functions" / "azure" / "app"
FUNCTION_APP = "${azurerm_linux_function_app.this.identity[0].principal_id}"


def unquote(value):
    """python-hcl2 keeps the quotes of string literals and block labels; drop them."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def normalize(value):
    if isinstance(value, dict):
        return {
            unquote(k): normalize(v)
            for k, v in value.items()
            if k not in ("__is_block__", "__comments__")
        }
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return unquote(value)


@pytest.fixture(scope="module")
def module():
    """{"resource": {type: {name: body}}, "locals": {...}, "variable": {...}, "output": {...}}."""
    merged = {"resource": {}, "data": {}, "locals": {}, "variable": {}, "output": {}}
    for path in sorted(MODULE.glob("*.tf")):
        with path.open() as handle:
            parsed = normalize(hcl2.load(handle))
        for block in parsed.get("resource", []):
            for kind, named in block.items():
                for name, body in named.items():
                    assert name not in merged["resource"].setdefault(kind, {}), (kind, name)
                    merged["resource"][kind][name] = body
        for block in parsed.get("data", []):
            for kind, named in block.items():
                merged["data"].setdefault(kind, {}).update(named)
        for block in parsed.get("locals", []):
            merged["locals"].update(block)
        for block in parsed.get("variable", []):
            merged["variable"].update(block)
        for block in parsed.get("output", []):
            merged["output"].update(block)
    return merged


def resource(module, kind, name):
    assert kind in module["resource"], f"no {kind} in infra/azure"
    assert name in module["resource"][kind], f"no {kind}.{name} in infra/azure"
    return module["resource"][kind][name]


def one_block(body, key):
    blocks = body.get(key)
    assert isinstance(blocks, list) and len(blocks) == 1, f"expected one `{key}` block"
    return blocks[0]


def app_settings(module):
    """The settings every deployment gets (the Slack reference is added only when configured)."""
    app = resource(module, "azurerm_linux_function_app", "this")
    assert (
        app["app_settings"]
        == "${merge(local.app_settings, local.slack_app_setting, local.response_app_setting)}"
    )
    return module["locals"]["app_settings"]


def function_json(name):
    return json.loads((APP / name / "function.json").read_text())


def binding(function, kind):
    found = [b for b in function["bindings"] if b["type"] == kind]
    assert len(found) == 1, f"expected one {kind} binding"
    return found[0]


def host_read_settings():
    """App settings the host resolves into the function.json files (`%NAME%`)."""
    names = set()
    for path in APP.glob("*/function.json"):
        names.update(re.findall(r"%([A-Z0-9_]+)%", path.read_text()))
    return names


def test_diagnostic_setting_streams_the_subscription_activity_log_to_the_hub(module):
    setting = resource(module, "azurerm_monitor_diagnostic_setting", "activity_log")
    assert setting["target_resource_id"] == "${local.subscription_scope}"
    assert module["locals"]["subscription_scope"] == "/subscriptions/${local.subscription_id}"
    assert setting["eventhub_name"] == "${azurerm_eventhub.activity_log.name}"
    assert setting["eventhub_authorization_rule_id"] == (
        "${azurerm_eventhub_namespace_authorization_rule.activity_log_export.id}"
    )
    categories = [log["category"] for log in setting["enabled_log"]]
    assert "Administrative" in categories

    rule = resource(module, "azurerm_eventhub_namespace_authorization_rule", "activity_log_export")
    hub = resource(module, "azurerm_eventhub", "activity_log")
    # The rule and the hub live in the same namespace.
    assert rule["namespace_name"] == hub["namespace_name"] == "${azurerm_eventhub_namespace.this.name}"
    # Azure Monitor needs Manage, Send and Listen on the rule it streams with.
    assert rule["listen"] is True and rule["send"] is True and rule["manage"] is True


def test_the_activity_log_function_listens_on_that_hub(module):
    settings = app_settings(module)
    trigger = binding(function_json("ActivityLog"), "eventHubTrigger")
    assert trigger["cardinality"] == "many"
    assert trigger["name"] == "messages"  # handler::EVENT_HUB_BINDING

    hub_setting = trigger["eventHubName"].strip("%")
    assert settings[hub_setting] == "${azurerm_eventhub.activity_log.name}"
    group_setting = trigger["consumerGroup"].strip("%")
    assert settings[group_setting] == "${azurerm_eventhub_consumer_group.snapwatch.name}"
    group = resource(module, "azurerm_eventhub_consumer_group", "snapwatch")
    assert group["eventhub_name"] == "${azurerm_eventhub.activity_log.name}"
    # Identity-based connection: `<connection>__fullyQualifiedNamespace`, no connection string.
    connection = trigger["connection"]
    assert settings[f"{connection}__fullyQualifiedNamespace"] == (
        "${azurerm_eventhub_namespace.this.name}.servicebus.windows.net"
    )
    assert connection not in settings, "no Event Hubs connection string in the app settings"


def test_event_grid_delivers_consumed_operations_to_the_resource_events_function(module):
    trigger = binding(function_json("ResourceEvents"), "eventGridTrigger")
    assert trigger["name"] == "event"  # handler::EVENT_GRID_BINDING
    topic = resource(module, "azurerm_eventgrid_system_topic", "subscription")
    assert topic["source_resource_id"] == "${local.subscription_scope}"
    assert topic["topic_type"] == "Microsoft.Resources.Subscriptions"

    subscription = resource(module, "azurerm_eventgrid_system_topic_event_subscription", "resource_events")
    assert subscription["system_topic"] == "${local.system_topic_name}"
    assert subscription["resource_group_name"] == "${local.system_topic_resource_group}"
    endpoint = one_block(subscription, "azure_function_endpoint")
    assert endpoint["function_id"] == (
        "${azurerm_linux_function_app.this.id}/functions/${local.event_grid_function}"
    )
    assert (APP / module["locals"]["event_grid_function"] / "function.json").is_file()

    # The filter lets through exactly the operations the core parser consumes.
    consumed = set(snapwatch_consumed("azure"))
    assert consumed, "snapwatch consumed azure listed nothing"
    filtered = one_block(subscription, "advanced_filter")
    string_in = one_block(filtered, "string_in")
    assert string_in["key"] == "data.operationName"
    assert string_in["values"] == "${local.consumed_operations}"
    assert {op.lower() for op in module["locals"]["consumed_operations"]} == consumed

    dead_letter = one_block(subscription, "storage_blob_dead_letter_destination")
    assert dead_letter["storage_account_id"] == "${azurerm_storage_account.this.id}"


def test_app_settings_give_the_handler_what_it_reads(module):
    settings = app_settings(module)
    assert settings["FUNCTIONS_WORKER_RUNTIME"] == "custom"
    assert settings["SNAPWATCH_TABLE_ENDPOINT"] == "${azurerm_storage_account.this.primary_table_endpoint}"
    assert settings["SNAPWATCH_TABLE_NAME"] == "${azurerm_storage_table.state.name}"
    assert "SNAPWATCH_TABLE_KEY" not in settings, "the table is reached with the identity, not a key"
    # The secret is referenced, never inlined, and only when one is configured.
    assert module["locals"]["slack_app_setting"] == (
        '${local.slack_configured ? {SNAPWATCH_SLACK_WEBHOOK_URL = '
        '"@Microsoft.KeyVault(VaultName=${azurerm_key_vault.this.name};SecretName=${local.slack_secret_name})"} : {}}'
    ), module["locals"]["slack_app_setting"]
    secret = resource(module, "azurerm_key_vault_secret", "slack_webhook")
    assert secret["key_vault_id"] == "${azurerm_key_vault.this.id}"
    assert secret["name"] == "${local.slack_secret_name}"

    # Every setting the Rust handler requires (and the host does not provide) is set.
    source = (ROOT / "functions/azure/src/settings.rs").read_text()
    names = dict(re.findall(r'pub const ([A-Z_]+): &str = "([A-Z_]+)";', source))
    required = set(re.findall(r"required\(env::([A-Z_]+)\)", source))
    host_provided = {"IDENTITY_ENDPOINT", "IDENTITY_HEADER"}
    # Set only when a webhook is configured (checked above); the handler runs without it.
    conditional = {"SNAPWATCH_SLACK_WEBHOOK_URL"}
    for constant in required:
        name = names[constant]
        assert name in settings or name in host_provided | conditional, f"{name} is required by the handler"
    # Detector settings use the core's names.
    core_config = (ROOT / "shared/core/src/config.rs").read_text()
    host_read = host_read_settings()
    for name in [k for k in settings if k.startswith("SNAPWATCH_") and k not in names.values()]:
        if name.startswith("SNAPWATCH_EVENTHUB") or name in host_read:
            continue  # read by the Functions host for a trigger, not by the handler
        assert f'"{name}"' in core_config, f"{name} is read by neither the handler nor the core"
    # And every setting a function.json names is set.
    for name in host_read:
        assert name in settings, f"a function.json reads %{name}% but no app setting sets it"

    app = resource(module, "azurerm_linux_function_app", "this")
    assert one_block(app, "identity")["type"] == "SystemAssigned, UserAssigned"
    stack = one_block(one_block(app, "site_config"), "application_stack")
    assert stack["use_custom_runtime"] is True
    assert app["https_only"] is True


def test_the_baseline_timer_is_opt_in_scheduled_and_needs_only_reader(module):
    trigger = binding(function_json("Baseline"), "timerTrigger")
    assert trigger["direction"] == "in"
    assert trigger.get("runOnStartup", False) is False
    assert trigger["schedule"] == "%SNAPWATCH_BASELINE_SCHEDULE%"
    settings = app_settings(module)
    assert settings["SNAPWATCH_BASELINE_SCHEDULE"] == "${var.baseline_schedule}"
    assert settings["SNAPWATCH_BASELINE_SUBSCRIPTIONS"] == "${local.subscription_id}"
    # Opt-in: the host skips a disabled function's timer.
    assert settings["AzureWebJobs.Baseline.Disabled"] == '${var.baseline_enabled ? "false" : "true"}'
    assert module["variable"]["baseline_enabled"]["default"] is False
    assert len(module["variable"]["baseline_schedule"]["default"].split()) == 6, "NCRONTAB with seconds"
    handler = (ROOT / "functions/azure/src/baseline.rs").read_text()
    assert 'pub const BASELINE_FUNCTION: &str = "Baseline";' in handler
    # Listing disks, snapshots and galleries is a read: the Reader grant covers it, and no role is
    # added at subscription scope beyond Reader (Reader has no actions such as beginGetAccess).
    # The opt-in response's role is the only other, absent unless a rule is enforced
    # (test_the_response_grants_only_the_undo_of_each_enforced_rule_and_nothing_when_off).
    at_subscription = {
        body["role_definition_name"]
        for name, body in module["resource"]["azurerm_role_assignment"].items()
        if body["scope"] == "${local.subscription_scope}" and name != "function_response"
    }
    assert at_subscription == {"Reader"}, at_subscription


def test_the_purge_timer_is_scheduled_from_an_app_setting_with_an_hourly_default(module):
    trigger = binding(function_json("Purge"), "timerTrigger")
    assert trigger["name"] == "timer"  # handler::PURGE_BINDING
    assert trigger["direction"] == "in"
    # A run on every cold start would hit the table for nothing; the schedule is enough.
    assert trigger.get("runOnStartup", False) is False
    setting = trigger["schedule"]
    assert setting == "%SNAPWATCH_PURGE_SCHEDULE%"
    assert app_settings(module)["SNAPWATCH_PURGE_SCHEDULE"] == "${var.purge_schedule}"
    variable = module["variable"]["purge_schedule"]
    assert variable["default"] == "0 17 * * * *"
    assert len(variable["default"].split()) == 6, "NCRONTAB with seconds"
    # The handler serves the route the host calls, under the function's folder name.
    handler = (ROOT / "functions/azure/src/handler.rs").read_text()
    assert 'pub const PURGE_FUNCTION: &str = "Purge";' in handler
    assert 'pub const PURGE_BINDING: &str = "timer";' in handler
    # Every function folder is a route of the handler, and goes into the package.
    folders = sorted(p.parent.name for p in APP.glob("*/function.json"))
    assert folders == ["ActivityLog", "Baseline", "Purge", "ResourceEvents"]
    makefile = (ROOT / "mk" / "azure.mk").read_text()
    assert "cp -R functions/azure/app/. $(AZURE_PACKAGE)/" in makefile
    # Deleting expired rows needs no role beyond the table's data contributor.
    roles = {
        body["role_definition_name"]
        for body in module["resource"]["azurerm_role_assignment"].values()
        if body["scope"] == "${azurerm_storage_table.state.resource_manager_id}"
    }
    assert roles == {"Storage Table Data Contributor"}


def test_the_function_identity_holds_only_the_narrow_roles(module):
    assignments = module["resource"]["azurerm_role_assignment"]
    granted = {
        (body["role_definition_name"], body["scope"])
        for name, body in assignments.items()
        if body["principal_id"] == FUNCTION_APP and name != "function_response"
    }
    assert granted == {
        ("Reader", "${local.subscription_scope}"),
        ("Storage Table Data Contributor", "${azurerm_storage_table.state.resource_manager_id}"),
        ("Azure Event Hubs Data Receiver", "${azurerm_eventhub.activity_log.id}"),
    }
    # The Key Vault reference's identity reads secrets of the module's own vault, nothing else.
    reader = "${azurerm_user_assigned_identity.key_vault_reader.principal_id}"
    assert {
        (body["role_definition_name"], body["scope"])
        for body in assignments.values()
        if body["principal_id"] == reader
    } == {("Key Vault Secrets User", "${azurerm_key_vault.this.id}")}
    # The table the role covers is the one the handler is pointed at.
    table = resource(module, "azurerm_storage_table", "state")
    assert table["storage_account_name"] == "${azurerm_storage_account.this.name}"
    vault = resource(module, "azurerm_key_vault", "this")
    assert vault["enable_rbac_authorization"] is True


def test_storage_is_private_and_modern(module):
    account = resource(module, "azurerm_storage_account", "this")
    assert account["min_tls_version"] == "TLS1_2"
    assert account["allow_nested_items_to_be_public"] is False
    assert account["https_traffic_only_enabled"] is True
    for name in ("rejects", "dead_letters"):
        container = resource(module, "azurerm_storage_container", name)
        assert container["container_access_type"] == "private"
    # The function.json rejects bindings write into the rejects container.
    rejects = resource(module, "azurerm_storage_container", "rejects")["name"]
    for function in ("ActivityLog", "ResourceEvents"):
        out = binding(function_json(function), "blob")
        assert out["name"] == "rejects"
        assert out["path"].split("/")[0] == rejects
    namespace = resource(module, "azurerm_eventhub_namespace", "this")
    assert namespace["minimum_tls_version"] == "1.2"


def test_the_module_documents_its_interface(module):
    for name, variable in module["variable"].items():
        assert variable.get("description"), f"variable {name} has no description"
    for name, output in module["output"].items():
        assert output.get("description"), f"output {name} has no description"
    assert module["variable"]["slack_webhook_url"]["sensitive"] is True
    readme = (MODULE / "README.md").read_text()
    assert "terraform validate" in readme
    assert (MODULE / "examples" / "basic" / "main.tf").is_file()


# ---- issue 17: a first deployment that works, and a second apply that keeps it ------------------


def test_the_next_apply_keeps_the_deployed_package(module):
    """config-zip sets WEBSITE_RUN_FROM_PACKAGE; the module neither sets it nor plans to remove it
    (issue 17, Azure 5)."""
    app = resource(module, "azurerm_linux_function_app", "this")
    assert "WEBSITE_RUN_FROM_PACKAGE" not in app_settings(module)
    assert "WEBSITE_RUN_FROM_PACKAGE" not in module["locals"]["slack_app_setting"]
    ignored = one_block(app, "lifecycle")["ignore_changes"]
    assert '${app_settings["WEBSITE_RUN_FROM_PACKAGE"]}' in ignored, ignored


def test_the_key_vault_reference_resolves_with_an_identity_granted_before_the_app(module):
    """A user-assigned identity, granted and propagated before the app exists, resolves the
    reference, so the first start gets the URL (issue 17, Azure 6)."""
    app = resource(module, "azurerm_linux_function_app", "this")
    identity = one_block(app, "identity")
    uai = "${azurerm_user_assigned_identity.key_vault_reader.id}"
    assert identity["identity_ids"] == [uai]
    assert app["key_vault_reference_identity_id"] == uai
    grant = resource(module, "azurerm_role_assignment", "key_vault_reader")
    assert grant["principal_id"] == "${azurerm_user_assigned_identity.key_vault_reader.principal_id}"
    wait = resource(module, "time_sleep", "key_vault_reader_propagation")
    assert wait["depends_on"] == ["${azurerm_role_assignment.key_vault_reader}"]
    assert wait["create_duration"] == "${var.rbac_propagation_wait}"
    assert "${time_sleep.key_vault_reader_propagation}" in app["depends_on"]


def test_every_secret_is_referenced_only_after_it_can_exist_and_be_read(module):
    """The secret is written after the deployer's grant propagated, and the app (the only reader)
    after the secret and the reader's grant (issue 17, Azure 6 and 9)."""
    secret = resource(module, "azurerm_key_vault_secret", "slack_webhook")
    assert secret["depends_on"] == ["${time_sleep.deployer_propagation}"]
    wait = resource(module, "time_sleep", "deployer_propagation")
    assert wait["depends_on"] == ["${azurerm_role_assignment.deployer_secrets_officer}"]
    app = resource(module, "azurerm_linux_function_app", "this")
    assert "${azurerm_key_vault_secret.slack_webhook}" in app["depends_on"]
    # The reference is present only when the secret is written by Terraform or declared written.
    assert module["locals"]["slack_configured"] == (
        "${local.slack_from_variable || var.slack_secret_set_out_of_band}"
    )
    assert module["variable"]["slack_secret_set_out_of_band"]["default"] is False


def test_an_unset_webhook_stores_no_placeholder(module):
    """Leaving slack_webhook_url null writes no secret and sets no setting (issue 17, item 13)."""
    secret = resource(module, "azurerm_key_vault_secret", "slack_webhook")
    assert secret["count"] == "${local.slack_from_variable ? 1 : 0}"
    assert secret["value"] == "${var.slack_webhook_url}"
    assert module["locals"]["slack_from_variable"] == "${nonsensitive(var.slack_webhook_url != null)}"
    for path in MODULE.rglob("*.tf"):
        assert "set-me-out-of-band" not in path.read_text(), path


def test_an_existing_system_topic_is_accepted_and_the_subscription_validated(module):
    """One system topic per subscription; only the provider's subscription (issue 17, Azure 8)."""
    topic = resource(module, "azurerm_eventgrid_system_topic", "subscription")
    assert topic["count"] == "${var.existing_system_topic == null ? 1 : 0}"
    precondition = one_block(one_block(topic, "lifecycle"), "precondition")
    assert precondition["condition"] == (
        "${lower(local.subscription_id) == lower(data.azurerm_client_config.current.subscription_id)}"
    )
    existing = module["data"]["azurerm_eventgrid_system_topic"]["existing"]
    assert existing["count"] == "${var.existing_system_topic == null ? 0 : 1}"
    check = one_block(one_block(existing, "lifecycle"), "postcondition")["condition"]
    assert "self.source_resource_id" in check and "Microsoft.Resources.Subscriptions" in check
    assert "one(data.azurerm_eventgrid_system_topic.existing[*].name)" in module["locals"]["system_topic_name"]
    validation = one_block(module["variable"]["subscription_id"], "validation")
    pattern = re.search(r'regex\("(.*)", var.subscription_id\)', validation["condition"]).group(1)
    pattern = pattern.encode().decode("unicode_escape")
    assert re.fullmatch(pattern, "0b1f6471-1bf0-4dda-aec3-111122223333")
    for bad in ["my-subscription", "/subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333", ""]:
        assert not re.fullmatch(pattern, bad), bad


def test_the_version_floor_and_the_example_are_what_azurerm_4_needs(module):
    """source_resource_id exists from azurerm 4.40; azurerm 4.x needs subscription_id on the
    provider (issue 17, Azure 9)."""
    for path in [MODULE / "versions.tf", MODULE / "examples/basic/main.tf"]:
        text = path.read_text()
        assert re.search(r'source\s*=\s*"hashicorp/azurerm"\s*\n\s*version\s*=\s*">= 4.40, < 5.0"', text), path
        assert 'source  = "hashicorp/time"' in text, path
    with (MODULE / "examples/basic/main.tf").open() as handle:
        example = normalize(hcl2.load(handle))
    provider = example["provider"][0]["azurerm"]
    assert provider["subscription_id"] == "${var.subscription_id}"


def test_the_plan_is_a_documented_variable(module):
    """Linux Consumption retires on 30 September 2028 (issue 17, Azure 10)."""
    variable = module["variable"]["function_plan_sku"]
    assert variable["default"] == "Y1"
    assert "Y1" in one_block(variable, "validation")["condition"]
    plan = resource(module, "azurerm_service_plan", "this")
    assert plan["sku_name"] == "${var.function_plan_sku}"
    readme = (MODULE / "README.md").read_text()
    assert "30 September 2028" in readme and "Flex Consumption" in readme


def test_the_handler_readme_lists_every_setting_the_bindings_need():
    """The settings table names what function.json needs (issue 17, item 13)."""
    table = (ROOT / "functions/azure/README.md").read_text().split("## Settings")[1].split("\n## ")[0]
    needed = set(host_read_settings())
    for path in APP.glob("*/function.json"):
        for found in json.loads(path.read_text())["bindings"]:
            if "connection" in found:
                connection = found["connection"]
                needed.add(connection if connection == "AzureWebJobsStorage" else f"{connection}__fullyQualifiedNamespace")
    missing = sorted(name for name in needed if f"`{name}`" not in table)
    assert not missing, f"functions/azure/README.md settings table lacks {missing}"


RESPONSE_WRITES = {
    "snapshot.exported": {
        "Microsoft.Compute/disks/endGetAccess/action",
        "Microsoft.Compute/snapshots/endGetAccess/action",
    },
    "chain.exposed-restore": {"Microsoft.Network/networkSecurityGroups/securityRules/delete"},
}
RESPONSE_READS = {
    "snapshot.exported": {"Microsoft.Compute/disks/read", "Microsoft.Compute/snapshots/read"},
    "chain.exposed-restore": {
        "Microsoft.Network/networkSecurityGroups/read",
        "Microsoft.Network/networkSecurityGroups/securityRules/read",
    },
}


def response_actions(module, modes):
    """The custom role's actions for `modes` ({rule: mode}) as response.tf's locals compute
    them, or None when no role is created (evaluated here: no azurerm provider offline)."""
    locals_ = module["locals"]
    enforced = sorted(rule for rule, mode in modes.items() if mode == "enforce")
    role = resource(module, "azurerm_role_definition", "response")
    assert role["count"] == "${length(local.response_enforced) > 0 ? 1 : 0}"
    assert locals_["response_enforced"] == (
        '${sort([for rule, mode in var.response_modes : rule if mode == "enforce"])}'
    )
    if not enforced:
        return None
    writes = {rule: set(actions) for rule, actions in locals_["response_writes"].items()}
    reads = {rule: set(actions) for rule, actions in locals_["response_reads"].items()}
    actions = set()
    for rule in enforced:
        actions |= writes[rule] | reads[rule]
    return actions


def test_the_response_grants_only_the_undo_of_each_enforced_rule_and_nothing_when_off(module):
    locals_ = module["locals"]
    # The writes are exactly the two undo calls, each under its rule.
    assert {r: set(a) for r, a in locals_["response_writes"].items()} == RESPONSE_WRITES
    assert {r: set(a) for r, a in locals_["response_reads"].items()} == RESPONSE_READS
    variable = module["variable"]["response_modes"]
    assert variable["default"] == {}
    # Off by default, and dry-run only re-reads (Reader): no role, no assignment.
    assert response_actions(module, {}) is None
    assert response_actions(module, {"snapshot.exported": "dry-run", "chain.exposed-restore": "off"}) is None
    assert response_actions(module, {"snapshot.exported": "enforce"}) == (
        RESPONSE_WRITES["snapshot.exported"] | RESPONSE_READS["snapshot.exported"]
    )
    both = response_actions(module, {"snapshot.exported": "enforce", "chain.exposed-restore": "enforce"})
    assert not any("write" in a or a.endswith("/*") or a == "*" for a in both), both
    role = resource(module, "azurerm_role_definition", "response")
    permissions = one_block(role, "permissions")
    assert permissions["actions"] == "${local.response_actions}"
    assert permissions["not_actions"] == []
    assert role["assignable_scopes"] == ["${local.subscription_scope}"]
    grant = resource(module, "azurerm_role_assignment", "function_response")
    assert grant["count"] == role["count"]
    assert grant["principal_id"] == FUNCTION_APP
    assert grant["role_definition_id"] == "${azurerm_role_definition.response[0].role_definition_resource_id}"


def test_the_response_modes_reach_the_handler_only_when_set(module):
    locals_ = module["locals"]
    setting = locals_["response_app_setting"]
    assert "SNAPWATCH_RESPONSE" in setting and 'local.response_setting == ""' in setting, setting
    # `rule=mode` pairs, the off ones left out: every rule off sets nothing.
    assert locals_["response_setting"] == (
        '${join(",", [for rule, mode in var.response_modes : "${rule}=${mode}" if mode != "off"])}'
    )
    handler = (ROOT / "functions/azure/src/settings.rs").read_text()
    assert "SNAPWATCH_RESPONSE" in handler or "config::env::RESPONSE" in handler
