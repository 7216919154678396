# The subscription's Activity Log → Event Hub → the ActivityLog function.
resource "azurerm_eventhub_namespace" "this" {
  #checkov:skip=CKV_AZURE_228:Zone redundancy is a region and cost choice, not a security control.
  name                          = "snapwatch-${var.name_suffix}"
  resource_group_name           = azurerm_resource_group.this.name
  location                      = azurerm_resource_group.this.location
  sku                           = "Standard"
  capacity                      = 1
  minimum_tls_version           = "1.2"
  public_network_access_enabled = true
  # Azure Monitor's diagnostic export authenticates with the namespace rule below.
  local_authentication_enabled = true
  tags                         = local.tags
}

resource "azurerm_eventhub" "activity_log" {
  name                = "activity-log"
  namespace_name      = azurerm_eventhub_namespace.this.name
  resource_group_name = azurerm_resource_group.this.name
  partition_count     = var.eventhub_partition_count
  message_retention   = var.eventhub_retention_days
}

resource "azurerm_eventhub_consumer_group" "snapwatch" {
  name                = "snapwatch"
  namespace_name      = azurerm_eventhub_namespace.this.name
  eventhub_name       = azurerm_eventhub.activity_log.name
  resource_group_name = azurerm_resource_group.this.name
}

# Diagnostic settings need Manage, Send and Listen on a namespace rule to stream there.
resource "azurerm_eventhub_namespace_authorization_rule" "activity_log_export" {
  name                = "activity-log-export"
  namespace_name      = azurerm_eventhub_namespace.this.name
  resource_group_name = azurerm_resource_group.this.name
  listen              = true
  send                = true
  manage              = true
}

resource "azurerm_monitor_diagnostic_setting" "activity_log" {
  name                           = "snapwatch-activity-log"
  target_resource_id             = local.subscription_scope
  eventhub_name                  = azurerm_eventhub.activity_log.name
  eventhub_authorization_rule_id = azurerm_eventhub_namespace_authorization_rule.activity_log_export.id

  # Writes and actions on compute and network resources are Administrative events.
  enabled_log {
    category = "Administrative"
  }
}
