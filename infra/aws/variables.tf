variable "name_prefix" {
  description = "Prefix of every resource name (function, table, topic, queue, rule)."
  type        = string
  default     = "snapwatch"

  validation {
    condition     = can(regex("^[a-zA-Z0-9-_]{1,40}$", var.name_prefix))
    error_message = "name_prefix: 1-40 characters of letters, digits, '-' and '_'."
  }
}

variable "lambda_zip_path" {
  description = "Path of the deployment zip built by `make package-aws` (target/lambda/snapwatch-aws/bootstrap.zip)."
  type        = string
}

variable "lambda_architecture" {
  description = "CPU architecture of the Lambda: arm64 (cheaper per GB-second) or x86_64. Must match the zip."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be \"arm64\" or \"x86_64\"."
  }
}

variable "lambda_memory_mb" {
  description = "Lambda memory in MB (CPU scales with it)."
  type        = number
  default     = 128
}

variable "lambda_timeout_seconds" {
  description = "Lambda timeout: covers the store round trips and a Slack post with one Retry-After wait."
  type        = number
  default     = 30
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions: caps the function's cost and its write rate on the table. -1 leaves it unreserved (needed in accounts whose concurrency quota is below 110)."
  type        = number
  default     = 10

  validation {
    condition     = var.reserved_concurrency == -1 || var.reserved_concurrency >= 1
    error_message = "reserved_concurrency must be -1 (unreserved) or at least 1."
  }
}

variable "maximum_event_age_seconds" {
  description = "How long EventBridge and Lambda keep retrying one event before it goes to the dead-letter queue."
  type        = number
  default     = 21600
}

variable "slack_webhook_secret_arn" {
  description = "ARN of an existing Secrets Manager secret holding the Slack incoming-webhook URL (the function reads Secrets Manager only). Null disables Slack. The URL itself never appears in Terraform or in the function's environment."
  type        = string
  default     = null

  validation {
    condition     = var.slack_webhook_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[^:]+:[0-9]{12}:secret:.+", var.slack_webhook_secret_arn))
    error_message = "slack_webhook_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "slack_webhook_secret_kms_key_arn" {
  description = "KMS key that encrypts the Slack secret, when it is a customer managed key (the function gets kms:Decrypt on it, through Secrets Manager only)."
  type        = string
  default     = null
}

variable "security_hub_enabled" {
  description = "Also import every finding into AWS Security Hub (BatchImportFindings, ASFF) under this account's default product ARN, from both functions. Security Hub must be enabled in the deployment region. Grants exactly securityhub:BatchImportFindings on that product."
  type        = bool
  default     = false
}

variable "kms_key_arn" {
  description = "Customer managed KMS key for the table, topic, queue, logs and environment. Null creates one (with rotation). A key you bring must allow logs.<region>.amazonaws.com and events.amazonaws.com to use it."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "Retention of the function's log group."
  type        = number
  default     = 365
}

variable "log_level" {
  description = "RUST_LOG filter of the function."
  type        = string
  default     = "info"
}

variable "trusted_accounts" {
  description = "Account ids that are ours (shares with them are not alerted). The account owning a resource is always trusted."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for account in var.trusted_accounts : can(regex("^[0-9]{12}$", account))])
    error_message = "trusted_accounts must be 12-digit AWS account ids."
  }
}

variable "trusted_principals" {
  description = "Glob patterns of principals whose actions are trusted (e.g. arn:aws:iam::*:role/backup-*)."
  type        = list(string)
  default     = []
}

variable "window_days" {
  description = "How long facts link up into a chain (and stay in the table, through TTL)."
  type        = number
  default     = 30
}

variable "admin_ports" {
  description = "Ports whose opening to the internet completes the exposed-restore chain (all ports always count)."
  type        = list(number)
  default     = [22, 3389]
}

variable "min_severity" {
  description = "Findings below this severity are recorded but not sent: info, low, medium, high or critical."
  type        = string
  default     = "medium"

  validation {
    condition     = contains(["info", "low", "medium", "high", "critical"], var.min_severity)
    error_message = "min_severity must be one of info, low, medium, high, critical."
  }
}

variable "sns_format" {
  description = "SNS message body: finding (the snapwatch finding JSON) or ocsf (an OCSF 1.5.0 Detection Finding, for subscribers that load Security Lake or a SIEM)."
  type        = string
  default     = "finding"

  validation {
    condition     = contains(["finding", "ocsf"], var.sns_format)
    error_message = "sns_format must be finding or ocsf."
  }
}

variable "organization_id" {
  description = "Organization mode: the AWS Organizations id (o-…) whose accounts forward their events to a central event bus created here, where the detector's rule runs. Null: the rule watches this account's default bus in this region."
  type        = string
  default     = null

  validation {
    condition     = var.organization_id == null || can(regex("^o-[a-z0-9]{10,32}$", var.organization_id))
    error_message = "organization_id must look like o-abc123def4."
  }
}

variable "enable_deletion_protection" {
  description = "Deletion protection on the state table. Keep it on in production; tests turn it off to destroy."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

# ---- snapshot baseline (baseline.tf) ----------------------------------------------------------

variable "baseline_enabled" {
  description = "Deploy the snapshot baseline: a scheduled Lambda that lists the account's snapshots and AMIs and their sharing, and alerts on what no received event explains. Off: nothing of it is created."
  type        = bool
  default     = false
}

variable "baseline_zip_path" {
  description = "Path of the baseline deployment zip built by `make package-aws` (target/lambda/snapwatch-aws-baseline/bootstrap.zip). Required when baseline_enabled."
  type        = string
  default     = null
}

variable "baseline_schedule" {
  description = "EventBridge Scheduler expression of the baseline runs (rate(...) or cron(...), UTC)."
  type        = string
  default     = "rate(1 hour)"

  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.baseline_schedule))
    error_message = "baseline_schedule must be a rate(...) or cron(...) expression."
  }
}

variable "baseline_regions" {
  description = "Regions whose snapshots the baseline lists. Empty: the region this module is deployed in."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for region in var.baseline_regions : can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", region))])
    error_message = "baseline_regions must be AWS region names such as eu-west-1."
  }
}

variable "baseline_timeout_seconds" {
  description = "Timeout of one baseline run: every region's paginated Describe calls with throttling back-off, plus the store round trips."
  type        = number
  default     = 300

  validation {
    condition     = var.baseline_timeout_seconds >= 30 && var.baseline_timeout_seconds <= 900
    error_message = "baseline_timeout_seconds must be between 30 and 900 (the Lambda maximum)."
  }
}

variable "baseline_memory_mb" {
  description = "Memory of the baseline Lambda in MB (CPU scales with it): it keeps the listed snapshots and their sharing in memory while it compares them."
  type        = number
  default     = 256
}

variable "response_modes" {
  description = "Opt-in response (README \"Response\"): rule id => off, dry-run or enforce, for snapshot.public, snapshot.shared-external and chain.exposed-restore (snapshot.exported has no AWS undo). Every rule is off by default. The detector's role gains only the re-read actions of the rules not off and the remove/revoke actions of the rules enforced; nothing when every mode is off."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for rule, mode in var.response_modes :
      contains(["snapshot.public", "snapshot.shared-external", "snapshot.exported", "chain.exposed-restore"], rule)
      && contains(["off", "dry-run", "enforce"], mode)
    ])
    error_message = "response_modes maps snapshot.public, snapshot.shared-external, snapshot.exported or chain.exposed-restore to off, dry-run or enforce."
  }
}
