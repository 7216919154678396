# CloudTrail archive as a source (issue 12): the trail bucket's object-created notifications for
# `AWSLogs/…/*.json.gz` go to an SQS queue (with its own dead-letter queue), and a third function
# streams each log file through the core, into the same table, topic, Slack secret and
# dead-letter queue as the detector. Everything here exists only when archive_bucket_name is set
# (count 0 otherwise).

locals {
  archive_enabled        = var.archive_bucket_name != null
  archive_name           = "${var.name_prefix}-archive"
  archive_log_group_name = "/aws/lambda/${local.archive_name}"
  # The trail's own S3 key prefix, if it has one, then CloudTrail's AWSLogs/ folder: both the
  # per-account (AWSLogs/ACCOUNT/CloudTrail/…) and organization (AWSLogs/o-…/ACCOUNT/…) layouts.
  archive_key_prefix    = "${var.archive_prefix == "" ? "" : "${trimsuffix(var.archive_prefix, "/")}/"}AWSLogs/"
  archive_bucket_arn    = "arn:${local.partition}:s3:::${coalesce(var.archive_bucket_name, "-")}"
  archive_bucket_owner  = coalesce(var.archive_bucket_account_id, local.account_id)
  archive_queue_name    = "${local.archive_name}-notifications"
  archive_queue_arn     = "arn:${local.partition}:sqs:${local.region}:${local.account_id}:${local.archive_queue_name}"
  archive_kms_encrypted = var.archive_kms_key_arn != null
}

# ---- the notification queue and its dead-letter queue ----------------------------------------

# SQS-managed encryption, not the module's key: S3 must encrypt what it sends, and a customer
# managed key would need S3 in its policy (impossible for a key the user brings). The messages
# carry object keys and sizes only.
resource "aws_sqs_queue" "archive_dead_letters" {
  count = local.archive_enabled ? 1 : 0

  name                      = "${local.archive_name}-failed-objects"
  message_retention_seconds = 1209600 # 14 days: time to look and redrive
  sqs_managed_sse_enabled   = true
  tags                      = local.tags
}

resource "aws_sqs_queue" "archive" {
  count = local.archive_enabled ? 1 : 0

  name                    = local.archive_queue_name
  sqs_managed_sse_enabled = true
  # Lambda needs at least the function timeout; six times lets a batch be retried in-flight.
  visibility_timeout_seconds = 6 * var.archive_timeout_seconds
  message_retention_seconds  = 1209600
  # A log file that keeps failing (corrupt, unreadable) ends here after archive_max_receive_count
  # deliveries, with its notification, instead of being retried forever.
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.archive_dead_letters[0].arn
    maxReceiveCount     = var.archive_max_receive_count
  })
  policy = data.aws_iam_policy_document.archive_queue[0].json
  tags   = local.tags
}

data "aws_iam_policy_document" "archive_queue" {
  count = local.archive_enabled ? 1 : 0

  statement {
    sid       = "TrailBucketNotifies"
    actions   = ["sqs:SendMessage"]
    resources = [local.archive_queue_arn]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [local.archive_bucket_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.archive_bucket_owner]
    }
  }

  statement {
    sid       = "RefuseUnencryptedTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [local.archive_queue_arn]
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

# Replaces the bucket's whole notification configuration (S3 keeps one per bucket): set
# archive_manage_bucket_notification = false to add this queue to an existing configuration
# yourself (outputs archive_queue_arn and archive_notification_filter).
resource "aws_s3_bucket_notification" "archive" {
  count = local.archive_enabled && var.archive_manage_bucket_notification ? 1 : 0

  bucket = var.archive_bucket_name

  queue {
    id            = local.archive_name
    queue_arn     = aws_sqs_queue.archive[0].arn
    events        = ["s3:ObjectCreated:*"]
    filter_prefix = local.archive_key_prefix
    filter_suffix = ".json.gz"
  }
}

# ---- the function ------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "archive" {
  count = local.archive_enabled ? 1 : 0

  name              = local.archive_log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms_key_arn
  tags              = local.tags
}

resource "aws_lambda_function" "archive" {
  #checkov:skip=CKV_AWS_117:The function calls only AWS public endpoints and Slack; a VPC would add a NAT gateway (cost, one more failure point) and protect nothing it reads.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile the user owns; the zip comes from this repository's own build (make package-aws).
  #checkov:skip=CKV_AWS_116:SQS invokes it synchronously through the event source mapping; failed messages are redelivered and then kept by the notification queue's own redrive policy (aws_sqs_queue.archive_dead_letters), so a function DLQ would never receive anything.
  count = local.archive_enabled ? 1 : 0

  function_name    = local.archive_name
  description      = "snapwatch: reads the CloudTrail log files of the trail bucket into the same chains and alerts"
  role             = aws_iam_role.archive[0].arn
  filename         = var.archive_zip_path
  source_code_hash = var.archive_zip_path == null ? null : filebase64sha256(var.archive_zip_path)
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.lambda_architecture]
  memory_size      = var.archive_memory_mb
  timeout          = var.archive_timeout_seconds
  kms_key_arn      = local.kms_key_arn

  reserved_concurrent_executions = var.archive_max_concurrency

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.archive[0].name
  }

  # Exactly the detector's settings: the same table, topic, Slack secret and dead-letter queue.
  environment {
    variables = merge(local.function_environment, {
      SNAPWATCH_DEAD_LETTER_QUEUE_URL = aws_sqs_queue.dead_letters.url
    })
  }

  lifecycle {
    precondition {
      condition     = var.archive_zip_path != null
      error_message = "archive_zip_path is required when archive_bucket_name is set: the zip `make package-aws` builds at target/lambda/snapwatch-aws-archive/bootstrap.zip."
    }
  }

  depends_on = [aws_iam_role_policy.archive, aws_cloudwatch_log_group.archive]

  tags = local.tags
}

# A message whose object failed is reported alone (ReportBatchItemFailures); the rest of the
# batch is deleted.
resource "aws_lambda_event_source_mapping" "archive" {
  count = local.archive_enabled ? 1 : 0

  event_source_arn        = aws_sqs_queue.archive[0].arn
  function_name           = aws_lambda_function.archive[0].arn
  batch_size              = var.archive_batch_size
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.archive_max_concurrency
  }
}

# ---- the function's role: the detector's state access, its queue, the log files ------------

resource "aws_iam_role" "archive" {
  count = local.archive_enabled ? 1 : 0

  name                 = local.archive_name
  assume_role_policy   = data.aws_iam_policy_document.assume_lambda.json
  max_session_duration = 3600
  tags                 = local.tags
}

data "aws_iam_policy_document" "archive" {
  count = local.archive_enabled ? 1 : 0

  # The same table actions, topic, dead-letter queue, key, tracing and Slack secret as the
  # detector, on exactly the same resources.
  source_policy_documents = [data.aws_iam_policy_document.state_access.json]

  # What the event source mapping calls with the function's role.
  statement {
    sid       = "ArchiveQueue"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.archive[0].arn]
  }

  statement {
    sid       = "ArchiveLogFiles"
    actions   = ["s3:GetObject"]
    resources = ["${local.archive_bucket_arn}/${local.archive_key_prefix}*"]
  }

  # SSE-KMS trail buckets: decrypt with that key only, and only through S3.
  dynamic "statement" {
    for_each = local.archive_kms_encrypted ? [1] : []
    content {
      sid       = "ArchiveLogFilesKey"
      actions   = ["kms:Decrypt"]
      resources = [var.archive_kms_key_arn]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["s3.${local.region}.amazonaws.com"]
      }
    }
  }

  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.archive[0].arn}:*"]
  }
}

resource "aws_iam_role_policy" "archive" {
  count = local.archive_enabled ? 1 : 0

  name   = local.archive_name
  role   = aws_iam_role.archive[0].id
  policy = data.aws_iam_policy_document.archive[0].json
}
