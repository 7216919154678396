# The role EventBridge assumes in a member account to put matching events on the central bus.
# IAM is global: create it once per account and pass its ARN to every regional forwarder.

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
  description = "Prefix of the role name."
  type        = string
  default     = "snapwatch"
}

variable "central_event_bus_arn" {
  description = "ARN of the central bus (output `central_event_bus_arn` of the snapwatch module in the central account)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:events:[^:]+:[0-9]{12}:event-bus/.+", var.central_event_bus_arn))
    error_message = "central_event_bus_arn must be an EventBridge event bus ARN."
  }
}

variable "tags" {
  description = "Tags added to the role."
  type        = map(string)
  default     = {}
}

data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "assume_events" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "forwarder" {
  name                 = "${var.name_prefix}-forwarder"
  assume_role_policy   = data.aws_iam_policy_document.assume_events.json
  max_session_duration = 3600
  tags                 = merge({ "app" = "snapwatch" }, var.tags)
}

data "aws_iam_policy_document" "put_on_central_bus" {
  statement {
    actions   = ["events:PutEvents"]
    resources = [var.central_event_bus_arn]
  }
}

resource "aws_iam_role_policy" "forwarder" {
  name   = "${var.name_prefix}-forwarder"
  role   = aws_iam_role.forwarder.id
  policy = data.aws_iam_policy_document.put_on_central_bus.json
}

output "role_arn" {
  description = "Role for the regional forwarders' targets."
  value       = aws_iam_role.forwarder.arn
}
