# Chain state. The function's DynamoDB store owns the item layout: string keys `pk` (partition)
# and `sk` (sort), and `expires_at` (epoch seconds) for TTL. TTL deletes lazily, so the store's
# readers also ignore expired items.
resource "aws_dynamodb_table" "state" {
  name                        = "${var.name_prefix}-state"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.enable_deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = local.kms_key_arn
  }

  tags = local.tags
}

# Alerts: the finding JSON is the message body; `rule`, `severity` and `cloud` message
# attributes let subscribers filter.
resource "aws_sns_topic" "alerts" {
  name              = "${var.name_prefix}-alerts"
  kms_master_key_id = local.kms_key_arn
  tags              = local.tags
}

# Kept, never dropped: events the function could not parse (sent by the function itself),
# invocations that failed after Lambda's retries, and events EventBridge could not deliver.
resource "aws_sqs_queue" "dead_letters" {
  name                              = local.dead_letter_queue_name
  message_retention_seconds         = 1209600 # the maximum, 14 days: time to look and replay
  kms_master_key_id                 = local.kms_key_arn
  kms_data_key_reuse_period_seconds = 3600
  # Inline rather than aws_sqs_queue_policy: one attribute-propagation wait instead of two.
  policy = data.aws_iam_policy_document.dead_letters.json
  tags   = local.tags
}

locals {
  dead_letter_queue_name = "${var.name_prefix}-dead-letters"
  # Built, not read from the queue, so the queue's own policy can name it.
  dead_letter_queue_arn = "arn:${local.partition}:sqs:${local.region}:${local.account_id}:${local.dead_letter_queue_name}"
}

data "aws_iam_policy_document" "dead_letters" {
  statement {
    sid       = "EventBridgeWritesUndeliveredEvents"
    actions   = ["sqs:SendMessage"]
    resources = [local.dead_letter_queue_arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.consumed.arn]
    }
  }

  statement {
    sid       = "RefuseUnencryptedTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [local.dead_letter_queue_arn]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}
