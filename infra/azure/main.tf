data "azurerm_client_config" "current" {}

locals {
  subscription_id    = coalesce(var.subscription_id, data.azurerm_client_config.current.subscription_id)
  subscription_scope = "/subscriptions/${local.subscription_id}"
  tags               = merge({ "app" = "snapwatch" }, var.tags)

  # Operations the detector consumes (shared/core/src/parse/azure/mod.rs CONSUMED_OPERATIONS).
  # Event Grid's StringIn filter compares case-insensitively.
  consumed_operations = [
    "Microsoft.Compute/snapshots/write",
    "Microsoft.Compute/snapshots/beginGetAccess/action",
    "Microsoft.Compute/disks/write",
    "Microsoft.Compute/disks/beginGetAccess/action",
    "Microsoft.Compute/images/write",
    "Microsoft.Compute/virtualMachines/write",
    "Microsoft.Network/networkInterfaces/write",
    "Microsoft.Network/networkSecurityGroups/write",
    "Microsoft.Network/networkSecurityGroups/securityRules/write",
  ]

  # Function names are the folders of the deployed package (functions/azure/app).
  event_grid_function = "ResourceEvents"
}

resource "azurerm_resource_group" "this" {
  name     = var.resource_group_name
  location = var.location
  tags     = local.tags
}
