# What the function's identity may do, and nothing more.

# ARM lookups of disks, snapshots, VMs, NICs and NSGs the records name.
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

# The Key Vault reference in the app settings: read this one secret only.
resource "azurerm_role_assignment" "function_slack_secret" {
  scope                = azurerm_key_vault_secret.slack_webhook.resource_versionless_id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azurerm_linux_function_app.this.identity[0].principal_id
}

# Whoever applies the module writes the secret (RBAC vaults grant no one by default).
resource "azurerm_role_assignment" "deployer_secrets_officer" {
  scope                = azurerm_key_vault.this.id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = data.azurerm_client_config.current.object_id
}
