# snapwatch in one subscription, alerting to Slack.
#
#   export TF_VAR_slack_webhook_url='https://hooks.slack.com/services/…'
#   terraform init && terraform apply
#   make package-azure && az functionapp deployment source config-zip \
#     -g "$(terraform output -raw resource_group_name)" \
#     -n "$(terraform output -raw function_app_name)" --src target/azure/snapwatch-azure.zip

terraform {
  required_version = ">= 1.5"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.0, < 5.0"
    }
  }
}

provider "azurerm" {
  features {}
}

variable "slack_webhook_url" {
  description = "Slack incoming webhook URL."
  type        = string
  sensitive   = true
}

module "snapwatch" {
  source = "../.."

  name_suffix         = "prod01"
  location            = "westeurope"
  resource_group_name = "snapwatch-prod"
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
