resource "azurerm_service_plan" "this" {
  #checkov:skip=CKV_AZURE_212:Instance count is elastic on the consumption plan; a minimum of three is a Premium-plan cost choice.
  #checkov:skip=CKV_AZURE_225:Zone redundancy is not available on the consumption plan.
  name                = "snapwatch-${var.name_suffix}"
  resource_group_name = azurerm_resource_group.this.name
  location            = azurerm_resource_group.this.location
  os_type             = "Linux"
  sku_name            = var.function_plan_sku
  tags                = local.tags
}

# The custom handler (functions/azure): `make package-azure` builds the zip to deploy here.
resource "azurerm_linux_function_app" "this" {
  #checkov:skip=CKV_AZURE_221:Event Grid delivers to the function over its public endpoint (with the function's system key); the app serves no other HTTP route.
  name                        = "snapwatch-${var.name_suffix}"
  resource_group_name         = azurerm_resource_group.this.name
  location                    = azurerm_resource_group.this.location
  service_plan_id             = azurerm_service_plan.this.id
  storage_account_name        = azurerm_storage_account.this.name
  storage_account_access_key  = azurerm_storage_account.this.primary_access_key
  https_only                  = true
  functions_extension_version = "~4"
  tags                        = local.tags

  # The system identity is the handler's own (table, ARM, Event Hubs). The user-assigned one
  # resolves the Key Vault reference: it is granted (and the grant has propagated) before the
  # app exists, so the first start already gets the URL, not the literal reference.
  identity {
    type         = "SystemAssigned, UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.key_vault_reader.id]
  }
  key_vault_reference_identity_id = azurerm_user_assigned_identity.key_vault_reader.id

  site_config {
    minimum_tls_version = "1.2"
    ftps_state          = "Disabled"
    http2_enabled       = true

    application_stack {
      use_custom_runtime = true
    }
  }

  app_settings = merge(local.app_settings, local.slack_app_setting, local.response_app_setting)

  lifecycle {
    # `az functionapp deployment source config-zip` (make deploy-azure) sets this to the
    # deployed package; Terraform must not remove it on the next apply.
    ignore_changes = [app_settings["WEBSITE_RUN_FROM_PACKAGE"]]
  }

  # The secret (when the module writes it) and the reader grant exist before the reference does.
  depends_on = [azurerm_key_vault_secret.slack_webhook, time_sleep.key_vault_reader_propagation]
}

locals {
  app_settings = {
    FUNCTIONS_WORKER_RUNTIME = "custom"

    # Chain state: the table, reached with the managed identity (no key in the settings).
    SNAPWATCH_TABLE_ENDPOINT = azurerm_storage_account.this.primary_table_endpoint
    SNAPWATCH_TABLE_NAME     = azurerm_storage_table.state.name

    # The ActivityLog function's trigger (identity-based connection "SNAPWATCH_EVENTHUB").
    SNAPWATCH_EVENTHUB__fullyQualifiedNamespace = "${azurerm_eventhub_namespace.this.name}.servicebus.windows.net"
    SNAPWATCH_EVENTHUB_NAME                     = azurerm_eventhub.activity_log.name
    SNAPWATCH_EVENTHUB_CONSUMER_GROUP           = azurerm_eventhub_consumer_group.snapwatch.name

    SNAPWATCH_TRUSTED_ACCOUNTS   = join(",", concat([local.subscription_id], var.trusted_subscriptions))
    SNAPWATCH_TRUSTED_PRINCIPALS = join(",", var.trusted_principals)
    SNAPWATCH_WINDOW_DAYS        = tostring(var.window_days)
    SNAPWATCH_ADMIN_PORTS        = join(",", [for port in var.admin_ports : tostring(port)])
    SNAPWATCH_MIN_SEVERITY       = var.min_severity

    # The Purge function's timer (read by the host from Purge/function.json): deletes expired
    # facts and claims, since Table Storage has no TTL. The identity's Table Data Contributor
    # role already allows deleting rows of the state table.
    SNAPWATCH_PURGE_SCHEDULE = var.purge_schedule

    # The Baseline function (opt-in): lists the subscription's managed disks, snapshots and
    # Compute Galleries on its timer (read by the host from Baseline/function.json) with the
    # Reader role above, and alerts on exports and gallery shares no received event explains. The host needs the schedule to load the
    # function even while it is disabled.
    SNAPWATCH_BASELINE_SCHEDULE      = var.baseline_schedule
    SNAPWATCH_BASELINE_SUBSCRIPTIONS = local.subscription_id
    "AzureWebJobs.Baseline.Disabled" = var.baseline_enabled ? "false" : "true"
  }

  # Resolved by the platform with the user-assigned identity before the handler starts; absent
  # (findings only logged) when no webhook is configured, never a placeholder.
  # The response modes (response.tf); absent when every rule is off.
  response_app_setting = local.response_setting == "" ? {} : {
    SNAPWATCH_RESPONSE = local.response_setting
  }

  slack_app_setting = local.slack_configured ? {
    SNAPWATCH_SLACK_WEBHOOK_URL = "@Microsoft.KeyVault(VaultName=${azurerm_key_vault.this.name};SecretName=${local.slack_secret_name})"
  } : {}
}
