output "resource_group_name" {
  description = "The module's resource group."
  value       = azurerm_resource_group.this.name
}

output "function_app_name" {
  description = "Deploy the `make package-azure` zip here (az functionapp deployment source config-zip)."
  value       = azurerm_linux_function_app.this.name
}

output "function_principal_id" {
  description = "Object id of the function's system-assigned identity."
  value       = azurerm_linux_function_app.this.identity[0].principal_id
}

output "storage_account_name" {
  description = "Account holding the state table and the rejects container."
  value       = azurerm_storage_account.this.name
}

output "state_table_name" {
  description = "Table holding chain facts and alert claims."
  value       = azurerm_storage_table.state.name
}

output "rejects_container" {
  description = "Blob container where records and findings that could not be processed are kept."
  value       = azurerm_storage_container.rejects.name
}

output "eventhub_namespace" {
  description = "Event Hubs namespace receiving the Activity Log."
  value       = azurerm_eventhub_namespace.this.name
}

output "eventhub_name" {
  description = "Hub the Activity Log diagnostic setting streams to."
  value       = azurerm_eventhub.activity_log.name
}

output "key_vault_uri" {
  description = "Vault holding the Slack webhook secret."
  value       = azurerm_key_vault.this.vault_uri
}

output "slack_secret_name" {
  description = "Name of the Slack secret in the vault: write the webhook URL here out of band (then set slack_secret_set_out_of_band = true)."
  value       = local.slack_secret_name
}

output "key_vault_name" {
  description = "Vault holding the Slack webhook secret."
  value       = azurerm_key_vault.this.name
}

output "key_vault_reader_identity_id" {
  description = "User-assigned identity that resolves the Key Vault reference in the app settings."
  value       = azurerm_user_assigned_identity.key_vault_reader.id
}
