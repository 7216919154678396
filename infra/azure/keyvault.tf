# The Slack webhook URL lives here; the app setting holds only a Key Vault reference.
resource "azurerm_key_vault" "this" {
  #checkov:skip=CKV_AZURE_109:Key Vault references are resolved by App Service over the vault's public endpoint; a default-deny firewall needs VNet integration the consumption plan lacks. Access is RBAC-only.
  #checkov:skip=CKV_AZURE_189:Same as CKV_AZURE_109.
  #checkov:skip=CKV2_AZURE_32:Private endpoints need a VNet the module does not own.
  name                       = "snapwatch-${var.name_suffix}"
  resource_group_name        = azurerm_resource_group.this.name
  location                   = azurerm_resource_group.this.location
  tenant_id                  = data.azurerm_client_config.current.tenant_id
  sku_name                   = "standard"
  enable_rbac_authorization  = true
  purge_protection_enabled   = true
  soft_delete_retention_days = 90
  tags                       = local.tags

  network_acls {
    default_action = "Allow"
    bypass         = "AzureServices"
  }
}

resource "azurerm_key_vault_secret" "slack_webhook" {
  #checkov:skip=CKV_AZURE_41:Slack webhook URLs do not expire; rotation is revoking the webhook in Slack and setting a new version here.
  name         = "slack-webhook-url"
  key_vault_id = azurerm_key_vault.this.id
  # A placeholder when the URL is set out of band (az keyvault secret set …).
  value        = coalesce(var.slack_webhook_url, "set-me-out-of-band")
  content_type = "text/uri-list"

  depends_on = [azurerm_role_assignment.deployer_secrets_officer]

  lifecycle {
    # A URL set out of band must not be overwritten by the placeholder on the next apply.
    ignore_changes = [value]
  }
}
