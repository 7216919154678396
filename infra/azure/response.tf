# Opt-in response (issue 13): what the function may change to close an exposure a finding names,
# and nothing when every mode is off (the default). Dry runs only re-read, which the Reader role
# already allows; only a rule in `enforce` mode adds the one write its undo needs.
locals {
  # The rules the Azure function can respond to, and the one write each needs.
  response_writes = {
    "snapshot.exported" = [
      # Snapshots / Disks - Revoke Access: end the SAS the chain's export opened (a SAS can be
      # granted on either).
      "Microsoft.Compute/disks/endGetAccess/action",
      "Microsoft.Compute/snapshots/endGetAccess/action",
    ]
    "chain.exposed-restore" = [
      # Security Rules - Delete: the inbound rule the chain's event created, nothing else.
      "Microsoft.Network/networkSecurityGroups/securityRules/delete",
    ]
  }
  # The re-reads before each write (Reader covers them too; listed so the role states them).
  response_reads = {
    "snapshot.exported" = ["Microsoft.Compute/disks/read", "Microsoft.Compute/snapshots/read"]
    "chain.exposed-restore" = [
      "Microsoft.Network/networkSecurityGroups/read",
      "Microsoft.Network/networkSecurityGroups/securityRules/read",
    ]
  }
  response_enforced = sort([for rule, mode in var.response_modes : rule if mode == "enforce"])
  response_actions = sort(distinct(flatten([
    for rule in local.response_enforced : concat(local.response_writes[rule], local.response_reads[rule])
  ])))
  # SNAPWATCH_RESPONSE's form: `rule=mode,rule=mode` (absent: every rule off).
  response_setting = join(",", [for rule, mode in var.response_modes : "${rule}=${mode}" if mode != "off"])
}

resource "azurerm_role_definition" "response" {
  count = length(local.response_enforced) > 0 ? 1 : 0

  name        = "snapwatch-response-${var.name_suffix}"
  scope       = local.subscription_scope
  description = "snapwatch opt-in response: only the undo calls of the rules in enforce mode (${join(", ", local.response_enforced)})."

  permissions {
    actions     = local.response_actions
    not_actions = []
  }

  assignable_scopes = [local.subscription_scope]
}

resource "azurerm_role_assignment" "function_response" {
  count = length(local.response_enforced) > 0 ? 1 : 0

  scope              = local.subscription_scope
  role_definition_id = azurerm_role_definition.response[0].role_definition_resource_id
  principal_id       = azurerm_linux_function_app.this.identity[0].principal_id
}
