# snapwatch in one account and one region: the rule watches this region's default bus.
# Apply it in each region you use (CopySnapshot is logged in the destination region), or use
# the organization example to run one detector for every region and account.

terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 6.0"
    }
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name."
  type        = string
  default     = "snapwatch"
}

variable "region" {
  description = "Region to deploy to."
  type        = string
  default     = "us-east-1"
}

variable "lambda_zip_path" {
  description = "Deployment zip; null uses the one `make package-aws` builds in this repository."
  type        = string
  default     = null
}

variable "baseline_zip_path" {
  description = "Snapshot baseline deployment zip; null uses the one `make package-aws` builds in this repository."
  type        = string
  default     = null
}

variable "baseline_regions" {
  description = "Regions the snapshot baseline lists (empty: the deployment region)."
  type        = list(string)
  default     = []
}

variable "slack_webhook_secret_arn" {
  description = "Existing Secrets Manager secret holding the Slack webhook URL (null: SNS only)."
  type        = string
  default     = null
}

variable "trusted_accounts" {
  description = "Other account ids that are ours."
  type        = list(string)
  default     = []
}

variable "security_hub_enabled" {
  description = "Also import findings into AWS Security Hub (must be enabled in the region)."
  type        = bool
  default     = false
}

variable "archive_bucket_name" {
  description = "The CloudTrail archive bucket to read log files from (null: EventBridge only)."
  type        = string
  default     = null
}

variable "archive_prefix" {
  description = "The trail's S3 key prefix, if any (the folder before AWSLogs/)."
  type        = string
  default     = ""
}

variable "archive_kms_key_arn" {
  description = "KMS key of an SSE-KMS trail bucket (null: SSE-S3)."
  type        = string
  default     = null
}

variable "archive_zip_path" {
  description = "Archive function deployment zip; null uses the one `make package-aws` builds in this repository."
  type        = string
  default     = null
}

variable "enable_deletion_protection" {
  description = "Deletion protection on the state table."
  type        = bool
  default     = true
}

provider "aws" {
  region = var.region
}

module "snapwatch" {
  source = "../.."

  name_prefix                = var.name_prefix
  lambda_zip_path            = coalesce(var.lambda_zip_path, "${path.module}/../../../../target/lambda/snapwatch-aws/bootstrap.zip")
  slack_webhook_secret_arn   = var.slack_webhook_secret_arn
  trusted_accounts           = var.trusted_accounts
  enable_deletion_protection = var.enable_deletion_protection
  security_hub_enabled       = var.security_hub_enabled

  # Hourly snapshot baseline: catches shares and public snapshots the event stream missed.
  baseline_enabled  = true
  baseline_zip_path = coalesce(var.baseline_zip_path, "${path.module}/../../../../target/lambda/snapwatch-aws-baseline/bootstrap.zip")
  baseline_regions  = var.baseline_regions

  # Opt-in: the trail bucket's log files as a second source (same chains, alerts once).
  archive_bucket_name = var.archive_bucket_name
  archive_prefix      = var.archive_prefix
  archive_kms_key_arn = var.archive_kms_key_arn
  archive_zip_path    = var.archive_bucket_name == null ? null : coalesce(var.archive_zip_path, "${path.module}/../../../../target/lambda/snapwatch-aws-archive/bootstrap.zip")
}

output "alerts_topic_arn" {
  description = "Subscribe to the findings here."
  value       = module.snapwatch.alerts_topic_arn
}

output "dead_letter_queue_url" {
  description = "Events that could not be parsed or delivered."
  value       = module.snapwatch.dead_letter_queue_url
}

output "function_name" {
  description = "Detector Lambda."
  value       = module.snapwatch.function_name
}

output "table_name" {
  description = "Chain-state table."
  value       = module.snapwatch.table_name
}

output "rule_name" {
  description = "EventBridge rule."
  value       = module.snapwatch.rule_name
}

output "kms_key_arn" {
  description = "Key encrypting the table, topic, queue and logs."
  value       = module.snapwatch.kms_key_arn
}

output "dead_letter_queue_arn" {
  description = "ARN of the dead-letter queue."
  value       = module.snapwatch.dead_letter_queue_arn
}

output "rule_arn" {
  description = "ARN of the EventBridge rule."
  value       = module.snapwatch.rule_arn
}

output "role_arn" {
  description = "Execution role of the detector."
  value       = module.snapwatch.role_arn
}

output "event_pattern" {
  description = "The rule's event pattern."
  value       = module.snapwatch.event_pattern
}

output "baseline_function_name" {
  description = "Snapshot baseline Lambda."
  value       = module.snapwatch.baseline_function_name
}

output "baseline_role_arn" {
  description = "Execution role of the baseline."
  value       = module.snapwatch.baseline_role_arn
}

output "baseline_schedule_name" {
  description = "Schedule running the baseline."
  value       = module.snapwatch.baseline_schedule_name
}

output "baseline_scheduler_role_arn" {
  description = "Role the schedule invokes the baseline with."
  value       = module.snapwatch.baseline_scheduler_role_arn
}

output "archive_function_name" {
  description = "Archive Lambda (null unless archive_bucket_name is set)."
  value       = module.snapwatch.archive_function_name
}

output "archive_role_arn" {
  description = "Execution role of the archive Lambda."
  value       = module.snapwatch.archive_role_arn
}

output "archive_queue_arn" {
  description = "Queue the trail bucket notifies."
  value       = module.snapwatch.archive_queue_arn
}

output "archive_queue_url" {
  description = "URL of the notification queue."
  value       = module.snapwatch.archive_queue_url
}

output "archive_dead_letter_queue_url" {
  description = "Notifications whose log file kept failing."
  value       = module.snapwatch.archive_dead_letter_queue_url
}
