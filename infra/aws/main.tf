data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

module "event_pattern" {
  source = "./modules/event-pattern"
}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  function_name  = "${var.name_prefix}-detector"
  log_group_name = "/aws/lambda/${local.function_name}"
  kms_key_arn    = var.kms_key_arn != null ? var.kms_key_arn : aws_kms_key.snapwatch[0].arn

  organization_mode = var.organization_id != null
  # In organization mode the rule listens on the central bus the member accounts forward to.
  event_bus_name = local.organization_mode ? aws_cloudwatch_event_bus.central[0].name : "default"

  slack_enabled = var.slack_webhook_secret_arn != null

  # Every account may import its own findings under this product without registering one.
  security_hub_product_arn = "arn:${local.partition}:securityhub:${local.region}:${local.account_id}:product/${local.account_id}/default"

  tags = merge({ "app" = "snapwatch" }, var.tags)
}
