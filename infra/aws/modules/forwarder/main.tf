# One region of a member account: the rule on the default bus that forwards the events snapwatch
# consumes to the central bus. Instantiate it in EVERY region the account uses: CloudTrail logs
# CopySnapshot (and other calls) in the region where they happen, which need not be the region of
# the source snapshot or of the central bus.

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
  description = "Prefix of the rule name."
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

variable "forwarding_role_arn" {
  description = "Role EventBridge assumes to put events on the central bus (module forwarder-role)."
  type        = string
}

variable "maximum_event_age_seconds" {
  description = "How long EventBridge keeps retrying delivery to the central bus."
  type        = number
  default     = 86400
}

variable "tags" {
  description = "Tags added to the rule."
  type        = map(string)
  default     = {}
}

module "event_pattern" {
  source = "../event-pattern"
}

resource "aws_cloudwatch_event_rule" "forward" {
  name          = "${var.name_prefix}-forward-consumed-events"
  description   = "Forwards the CloudTrail calls snapwatch consumes to its central bus"
  event_pattern = module.event_pattern.event_pattern
  tags          = merge({ "app" = "snapwatch" }, var.tags)
}

resource "aws_cloudwatch_event_target" "central_bus" {
  rule      = aws_cloudwatch_event_rule.forward.name
  target_id = "snapwatch-central-bus"
  arn       = var.central_event_bus_arn
  role_arn  = var.forwarding_role_arn

  retry_policy {
    maximum_event_age_in_seconds = var.maximum_event_age_seconds
    maximum_retry_attempts       = 185
  }
}

output "rule_arn" {
  description = "ARN of the forwarding rule in this region."
  value       = aws_cloudwatch_event_rule.forward.arn
}
