# The central (security tooling) account: one detector for the whole organization. Its rule
# listens on a central bus that every member account forwards to (see ../member, which this
# account deploys too, so its own events reach the bus).

terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 6.0"
    }
  }
}

variable "region" {
  description = "Region of the detector and the central bus."
  type        = string
  default     = "us-east-1"
}

variable "organization_id" {
  description = "AWS Organizations id (o-…) whose accounts may forward events."
  type        = string
}

variable "organization_account_ids" {
  description = "Accounts of the organization: shares between them are trusted."
  type        = list(string)
  default     = []
}

variable "lambda_zip_path" {
  description = "Deployment zip; null uses the one `make package-aws` builds in this repository."
  type        = string
  default     = null
}

variable "slack_webhook_secret_arn" {
  description = "Existing Secrets Manager secret holding the Slack webhook URL (null: SNS only)."
  type        = string
  default     = null
}

provider "aws" {
  region = var.region
}

module "snapwatch" {
  source = "../../.."

  organization_id          = var.organization_id
  trusted_accounts         = var.organization_account_ids
  lambda_zip_path          = coalesce(var.lambda_zip_path, "${path.module}/../../../../../target/lambda/snapwatch-aws/bootstrap.zip")
  slack_webhook_secret_arn = var.slack_webhook_secret_arn
  # A whole organization's snapshot activity: allow more parallel invocations.
  reserved_concurrency = 50
}

output "central_event_bus_arn" {
  description = "Give this to every member account (variable central_event_bus_arn of ../member)."
  value       = module.snapwatch.central_event_bus_arn
}

output "alerts_topic_arn" {
  description = "Subscribe to the findings here."
  value       = module.snapwatch.alerts_topic_arn
}
