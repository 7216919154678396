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

# Created only from `slack_webhook_url`. With `slack_secret_set_out_of_band`, the operator writes
# the secret (`az keyvault secret set`) before the apply that references it. Neither: no secret,
# no app setting, and the handler only logs findings (never a placeholder it would refuse).
resource "azurerm_key_vault_secret" "slack_webhook" {
  #checkov:skip=CKV_AZURE_41:Slack webhook URLs do not expire; rotation is revoking the webhook in Slack and setting a new version here.
  count = local.slack_from_variable ? 1 : 0

  name         = local.slack_secret_name
  key_vault_id = azurerm_key_vault.this.id
  value        = var.slack_webhook_url
  content_type = "text/uri-list"

  # Writing needs the deployer's Secrets Officer grant to have propagated (a first apply otherwise
  # gets 403 Forbidden).
  depends_on = [time_sleep.deployer_propagation]
}

locals {
  slack_secret_name = "slack-webhook-url"
  # Whether a URL was given is not itself secret; its value stays sensitive.
  slack_from_variable = nonsensitive(var.slack_webhook_url != null)
  slack_configured    = local.slack_from_variable || var.slack_secret_set_out_of_band
}

# Azure RBAC grants take effect within minutes, not at once: wait before using them.
resource "time_sleep" "deployer_propagation" {
  create_duration = var.rbac_propagation_wait
  depends_on      = [azurerm_role_assignment.deployer_secrets_officer]
}

resource "time_sleep" "key_vault_reader_propagation" {
  create_duration = var.rbac_propagation_wait
  depends_on      = [azurerm_role_assignment.key_vault_reader]
}
