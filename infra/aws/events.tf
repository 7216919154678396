# Organization mode: member accounts forward matching events (from every region) to this bus.
resource "aws_cloudwatch_event_bus" "central" {
  count = local.organization_mode ? 1 : 0

  name = "${var.name_prefix}-central"
  tags = local.tags
}

data "aws_iam_policy_document" "central_bus" {
  count = local.organization_mode ? 1 : 0

  statement {
    sid       = "OrganizationAccountsForwardEvents"
    actions   = ["events:PutEvents"]
    resources = [aws_cloudwatch_event_bus.central[0].arn]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:PrincipalOrgID"
      values   = [var.organization_id]
    }
  }
}

resource "aws_cloudwatch_event_bus_policy" "central" {
  count = local.organization_mode ? 1 : 0

  event_bus_name = aws_cloudwatch_event_bus.central[0].name
  policy         = data.aws_iam_policy_document.central_bus[0].json
}

resource "aws_cloudwatch_event_rule" "consumed" {
  name           = "${var.name_prefix}-consumed-events"
  description    = "CloudTrail calls the snapwatch core consumes (successful ones only)"
  event_bus_name = local.event_bus_name
  event_pattern  = module.event_pattern.event_pattern
  tags           = local.tags
}

resource "aws_cloudwatch_event_target" "detector" {
  rule           = aws_cloudwatch_event_rule.consumed.name
  event_bus_name = local.event_bus_name
  target_id      = "snapwatch-detector"
  arn            = aws_lambda_function.detector.arn

  retry_policy {
    maximum_event_age_in_seconds = var.maximum_event_age_seconds
    maximum_retry_attempts       = 185
  }

  dead_letter_config {
    arn = aws_sqs_queue.dead_letters.arn
  }
}
