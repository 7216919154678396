variable "name_suffix" {
  description = "Short lower-case suffix that makes the globally unique names (storage account, Key Vault, Event Hubs namespace, function app) unique: 3-8 letters or digits."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]{3,8}$", var.name_suffix))
    error_message = "name_suffix must be 3-8 lower-case letters or digits."
  }
}

variable "location" {
  description = "Azure region for every resource of the module."
  type        = string
}

variable "resource_group_name" {
  description = "Name of the resource group the module creates."
  type        = string
  default     = "snapwatch"
}

variable "subscription_id" {
  description = "The subscription to watch (its Activity Log and resource events). Defaults to the provider's subscription."
  type        = string
  default     = null
}

variable "slack_webhook_url" {
  description = "Slack incoming webhook URL, stored in Key Vault and referenced (never inlined) from the app settings. Leave null to set the secret out of band."
  type        = string
  default     = null
  sensitive   = true
}

variable "trusted_subscriptions" {
  description = "Subscriptions (and other accounts) that are ours: shares and exports to them are not alerts."
  type        = list(string)
  default     = []
}

variable "trusted_principals" {
  description = "Glob patterns of trusted actors (UPNs, object ids)."
  type        = list(string)
  default     = []
}

variable "window_days" {
  description = "How long facts link up into one chain."
  type        = number
  default     = 30

  validation {
    condition     = var.window_days >= 1 && var.window_days <= 3650
    error_message = "window_days must be between 1 and 3650."
  }
}

variable "admin_ports" {
  description = "Ports whose opening to the internet completes an exposed-restore chain (all ports always count)."
  type        = list(number)
  default     = [22, 3389]
}

variable "min_severity" {
  description = "Findings below this severity are recorded but not sent."
  type        = string
  default     = "medium"

  validation {
    condition     = contains(["info", "low", "medium", "high", "critical"], var.min_severity)
    error_message = "min_severity must be info, low, medium, high or critical."
  }
}

variable "purge_schedule" {
  description = "When the Purge function deletes expired chain state from the table (Table Storage has no TTL): an NCRONTAB expression with seconds, default hourly at minute 17."
  type        = string
  default     = "0 17 * * * *"

  validation {
    condition     = can(regex("^\\S+( \\S+){5}$", var.purge_schedule))
    error_message = "purge_schedule must be a six-field NCRONTAB expression (second minute hour day month weekday)."
  }
}

variable "function_plan_sku" {
  description = "App Service plan SKU for the function app (Y1 = Linux consumption, EP1 = Elastic Premium)."
  type        = string
  default     = "Y1"
}

variable "eventhub_partition_count" {
  description = "Partitions of the Activity Log hub."
  type        = number
  default     = 2
}

variable "eventhub_retention_days" {
  description = "Days the hub keeps Activity Log records (room to replay after an outage)."
  type        = number
  default     = 1
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
