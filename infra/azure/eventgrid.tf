# The subscription's resource events → the ResourceEvents function. Faster than the Activity
# Log export but without request bodies: the function reads those resources from ARM.
# Azure allows one system topic per source subscription: when the subscription already has one,
# pass it as `existing_system_topic` and the module subscribes to it instead of creating another.
resource "azurerm_eventgrid_system_topic" "subscription" {
  count = var.existing_system_topic == null ? 1 : 0

  name                = "snapwatch-${var.name_suffix}"
  resource_group_name = azurerm_resource_group.this.name
  location            = "global"
  source_resource_id  = local.subscription_scope
  topic_type          = "Microsoft.Resources.Subscriptions"
  tags                = local.tags

  lifecycle {
    precondition {
      condition     = lower(local.subscription_id) == lower(data.azurerm_client_config.current.subscription_id)
      error_message = "A subscription's system topic can only be created with a provider configured for that subscription: set the azurerm provider's subscription_id to var.subscription_id."
    }
  }
}

data "azurerm_eventgrid_system_topic" "existing" {
  count = var.existing_system_topic == null ? 0 : 1

  name                = var.existing_system_topic.name
  resource_group_name = var.existing_system_topic.resource_group_name

  lifecycle {
    postcondition {
      condition     = lower(self.source_resource_id) == lower(local.subscription_scope) && self.topic_type == "Microsoft.Resources.Subscriptions"
      error_message = "existing_system_topic must be the Microsoft.Resources.Subscriptions system topic of the watched subscription."
    }
  }
}

locals {
  system_topic_name = (var.existing_system_topic == null
    ? one(azurerm_eventgrid_system_topic.subscription[*].name)
  : one(data.azurerm_eventgrid_system_topic.existing[*].name))
  system_topic_resource_group = (var.existing_system_topic == null
    ? azurerm_resource_group.this.name
  : var.existing_system_topic.resource_group_name)
}

resource "azurerm_eventgrid_system_topic_event_subscription" "resource_events" {
  name                = "snapwatch-resource-events"
  system_topic        = local.system_topic_name
  resource_group_name = local.system_topic_resource_group

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
