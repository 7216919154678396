# What the function's identity may do, and nothing more.

# ARM lookups of disks, snapshots, VMs, NICs and NSGs the records name, and the Baseline
# function's listing of disks, snapshots and galleries (Microsoft.Compute/disks/read,
# snapshots/read, galleries/read). Reader
# allows no action: not beginGetAccess, so the function can never open an export itself.
resource "azurerm_role_assignment" "function_reader" {
  scope                = local.subscription_scope
  role_definition_name = "Reader"
  principal_id         = azurerm_linux_function_app.this.identity[0].principal_id
}

# Chain state: this one table only.
resource "azurerm_role_assignment" "function_table" {
  scope                = azurerm_storage_table.state.resource_manager_id
  role_definition_name = "Storage Table Data Contributor"
  principal_id         = azurerm_linux_function_app.this.identity[0].principal_id
}

# The ActivityLog trigger's identity-based connection: receive from this hub only.
resource "azurerm_role_assignment" "function_eventhub" {
  scope                = azurerm_eventhub.activity_log.id
  role_definition_name = "Azure Event Hubs Data Receiver"
  principal_id         = azurerm_linux_function_app.this.identity[0].principal_id
}

# The Key Vault reference in the app settings is resolved with this identity, which exists and
# holds its grant before the function app does. Scope: the module's own vault, which holds only
# the Slack secret (so a secret written out of band is covered too).
resource "azurerm_user_assigned_identity" "key_vault_reader" {
  name                = "snapwatch-kv-${var.name_suffix}"
  resource_group_name = azurerm_resource_group.this.name
  location            = azurerm_resource_group.this.location
  tags                = local.tags
}

resource "azurerm_role_assignment" "key_vault_reader" {
  scope                = azurerm_key_vault.this.id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azurerm_user_assigned_identity.key_vault_reader.principal_id
}

# Whoever applies the module writes the secret (RBAC vaults grant no one by default).
resource "azurerm_role_assignment" "deployer_secrets_officer" {
  scope                = azurerm_key_vault.this.id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = data.azurerm_client_config.current.object_id
}
