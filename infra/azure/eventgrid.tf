# The subscription's resource events → the ResourceEvents function. Faster than the Activity
# Log export but without request bodies: the function reads those resources from ARM.
resource "azurerm_eventgrid_system_topic" "subscription" {
  name                = "snapwatch-${var.name_suffix}"
  resource_group_name = azurerm_resource_group.this.name
  location            = "global"
  source_resource_id  = local.subscription_scope
  topic_type          = "Microsoft.Resources.Subscriptions"
  tags                = local.tags
}

resource "azurerm_eventgrid_system_topic_event_subscription" "resource_events" {
  name                = "snapwatch-resource-events"
  system_topic        = azurerm_eventgrid_system_topic.subscription.name
  resource_group_name = azurerm_resource_group.this.name

  included_event_types = [
    "Microsoft.Resources.ResourceWriteSuccess",
    "Microsoft.Resources.ResourceActionSuccess",
  ]

  advanced_filter {
    string_in {
      key    = "data.operationName"
      values = local.consumed_operations
    }
  }

  azure_function_endpoint {
    function_id                       = "${azurerm_linux_function_app.this.id}/functions/${local.event_grid_function}"
    max_events_per_batch              = 1
    preferred_batch_size_in_kilobytes = 64
  }

  retry_policy {
    max_delivery_attempts = 30
    event_time_to_live    = 1440
  }

  storage_blob_dead_letter_destination {
    storage_account_id          = azurerm_storage_account.this.id
    storage_blob_container_name = azurerm_storage_container.dead_letters.name
  }
}
