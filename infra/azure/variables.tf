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
  description = "The subscription to watch (its Activity Log and resource events). Defaults to the provider's subscription; when set, it must be the provider's (a system topic and a subscription diagnostic setting are created through it)."
  type        = string
  default     = null

  validation {
    condition     = var.subscription_id == null || can(regex("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", var.subscription_id))
    error_message = "subscription_id must be a subscription GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx), not a name or a resource id."
  }
}

variable "existing_system_topic" {
  description = "An Event Grid system topic that already exists for the subscription (Azure allows only one per subscription): {name, resource_group_name}. Null: the module creates it."
  type = object({
    name                = string
    resource_group_name = string
  })
  default = null
}

variable "slack_webhook_url" {
  description = "Slack incoming webhook URL, stored in Key Vault and referenced (never inlined) from the app settings (it is then in the Terraform state). Null: no Slack alerts, or see slack_secret_set_out_of_band."
  type        = string
  default     = null
  sensitive   = true
}

variable "slack_secret_set_out_of_band" {
  description = "True when the secret `slack-webhook-url` was written into the module's vault out of band (`az keyvault secret set`, after a first apply): the app then references it. Set it only once the secret exists."
  type        = bool
  default     = false
}

variable "rbac_propagation_wait" {
  description = "How long to wait after a role assignment before using it (Azure RBAC grants take up to a few minutes to apply; Key Vault answers 403 before that)."
  type        = string
  default     = "90s"
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

variable "baseline_enabled" {
  description = "Run the snapshot baseline: the Baseline function lists the subscription's managed disks, snapshots and Compute Galleries on baseline_schedule and alerts on exports (open SAS) and gallery shares (community, or outside the trusted set) no received event explains. It uses the Reader role the function already has. Off: the function is disabled."
  type        = bool
  default     = false
}

variable "baseline_schedule" {
  description = "When the Baseline function runs (when baseline_enabled): an NCRONTAB expression with seconds, default hourly at minute 47."
  type        = string
  default     = "0 47 * * * *"

  validation {
    condition     = can(regex("^\\S+( \\S+){5}$", var.baseline_schedule))
    error_message = "baseline_schedule must be a six-field NCRONTAB expression (second minute hour day month weekday)."
  }
}

variable "function_plan_sku" {
  description = "App Service plan SKU of the function app: Y1 (Linux Consumption, pay per execution, retiring 30 September 2028) or EP1-EP3 (Elastic Premium, billed per instance even when idle). Flex Consumption (FC1) is not supported by this module yet; see the README."
  type        = string
  default     = "Y1"

  validation {
    condition     = contains(["Y1", "EP1", "EP2", "EP3"], var.function_plan_sku)
    error_message = "function_plan_sku must be Y1, EP1, EP2 or EP3."
  }
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

variable "response_modes" {
  description = "Opt-in response per rule: off (default), dry-run (the alert says which call would be made) or enforce. Azure responds to snapshot.exported (end the active SAS) and chain.exposed-restore (delete the NSG rule the chain's event created). The function's identity gains only the write of each rule in enforce mode; none when every rule is off or dry-run. A resource tagged snapwatch-exempt is never changed."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for rule, mode in var.response_modes : contains(["snapshot.exported", "chain.exposed-restore"], rule) && contains(["off", "dry-run", "enforce"], mode)])
    error_message = "response_modes maps snapshot.exported and chain.exposed-restore to off, dry-run or enforce."
  }
}
