# snapwatch in one subscription, alerting to Slack. Deploy with `make deploy-azure` from the
# repository root (infra/azure/deploy.sh): it applies, packages, deploys the code and applies
# again, in the order Event Grid needs. See ../../README.md, "First deployment".
#
#   export TF_VAR_subscription_id=00000000-0000-0000-0000-000000000000
#   export TF_VAR_slack_webhook_url='https://hooks.slack.com/services/…'   # optional
#   make deploy-azure

terraform {
  required_version = ">= 1.5"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.40, < 5.0"
    }
    time = {
      source  = "hashicorp/time"
      version = ">= 0.9, < 1.0"
    }
  }
}

variable "subscription_id" {
  description = "Subscription to deploy into and watch (azurerm 4.x requires it on the provider)."
  type        = string
}

variable "slack_webhook_url" {
  description = "Slack incoming webhook URL (optional: without it findings are only logged)."
  type        = string
  default     = null
  sensitive   = true
}

provider "azurerm" {
  features {}
  subscription_id = var.subscription_id
}

module "snapwatch" {
  source = "../.."

  name_suffix         = "prod01"
  location            = "westeurope"
  resource_group_name = "snapwatch-prod"
  subscription_id     = var.subscription_id
  slack_webhook_url   = var.slack_webhook_url

  trusted_subscriptions = ["11111111-2222-3333-4444-555555555555"]
  trusted_principals    = ["backup-automation@example.com"]
  min_severity          = "high"

  tags = {
    owner = "security-engineering"
  }
}

output "function_app_name" {
  value = module.snapwatch.function_app_name
}

output "resource_group_name" {
  value = module.snapwatch.resource_group_name
}
