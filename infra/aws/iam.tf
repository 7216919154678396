# Each function may touch only this deployment's table, topic, queue, key, its own log group and
# the Slack secret.
data "aws_iam_policy_document" "assume_lambda" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "detector" {
  name                 = "${var.name_prefix}-detector"
  assume_role_policy   = data.aws_iam_policy_document.assume_lambda.json
  max_session_duration = 3600
  tags                 = local.tags
}

# What every snapwatch function needs to keep chain state and raise findings: shared by the
# detector and the baseline (baseline.tf), so both reach exactly the same resources.
data "aws_iam_policy_document" "state_access" {
  statement {
    sid = "ChainState"
    # Exactly what functions/aws/src/dynamo.rs calls: conditional UpdateItem for facts and
    # claims, consistent BatchGetItem / GetItem reads, conditional DeleteItem to release a claim.
    actions = [
      "dynamodb:GetItem",
      "dynamodb:BatchGetItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
    ]
    resources = [aws_dynamodb_table.state.arn]
  }

  statement {
    sid       = "Alerts"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]
  }

  # The detector sends unparsable records here; for both functions Lambda's on-failure
  # destination writes failed asynchronous invocations here with the function's role.
  statement {
    sid       = "DeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dead_letters.arn]
  }

  statement {
    sid       = "EncryptedResources"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [local.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = [
        "dynamodb.${local.region}.amazonaws.com",
        "sns.${local.region}.amazonaws.com",
        "sqs.${local.region}.amazonaws.com",
        "lambda.${local.region}.amazonaws.com",
      ]
    }
  }

  statement {
    #checkov:skip=CKV_AWS_356:X-Ray's PutTraceSegments and PutTelemetryRecords support no resource-level permissions.
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }

  # The Security Hub sink (opt-in): one action, on this account's default product only.
  dynamic "statement" {
    for_each = var.security_hub_enabled ? [1] : []
    content {
      sid       = "SecurityHubImport"
      actions   = ["securityhub:BatchImportFindings"]
      resources = [local.security_hub_product_arn]
    }
  }

  dynamic "statement" {
    for_each = local.slack_enabled ? [1] : []
    content {
      sid       = "SlackWebhookSecret"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [var.slack_webhook_secret_arn]
    }
  }

  dynamic "statement" {
    for_each = local.slack_enabled && var.slack_webhook_secret_kms_key_arn != null ? [1] : []
    content {
      sid       = "SlackWebhookSecretKey"
      actions   = ["kms:Decrypt"]
      resources = [var.slack_webhook_secret_kms_key_arn]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${local.region}.amazonaws.com"]
      }
    }
  }
}

data "aws_iam_policy_document" "detector" {
  # The response's grants (response.tf) exist only while some rule's mode is not off.
  source_policy_documents = concat(
    [data.aws_iam_policy_document.state_access.json],
    data.aws_iam_policy_document.response[*].json,
  )

  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.detector.arn}:*"]
  }
}

resource "aws_iam_role_policy" "detector" {
  name   = "${var.name_prefix}-detector"
  role   = aws_iam_role.detector.id
  policy = data.aws_iam_policy_document.detector.json
}
