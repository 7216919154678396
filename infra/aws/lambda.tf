locals {
  # What both functions (the event detector and the baseline) read: one definition, so their
  # detector settings cannot drift apart.
  function_environment = merge(
    {
      SNAPWATCH_TABLE_NAME         = aws_dynamodb_table.state.name
      SNAPWATCH_SNS_TOPIC_ARN      = aws_sns_topic.alerts.arn
      SNAPWATCH_TRUSTED_ACCOUNTS   = join(",", var.trusted_accounts)
      SNAPWATCH_TRUSTED_PRINCIPALS = join(",", var.trusted_principals)
      SNAPWATCH_WINDOW_DAYS        = tostring(var.window_days)
      SNAPWATCH_ADMIN_PORTS        = join(",", [for port in var.admin_ports : tostring(port)])
      SNAPWATCH_MIN_SEVERITY       = var.min_severity
      SNAPWATCH_SECURITYHUB        = var.security_hub_enabled ? "on" : "off"
      SNAPWATCH_SNS_FORMAT         = var.sns_format
      RUST_LOG                     = var.log_level
    },
    # A reference to the secret, never the URL.
    local.slack_enabled ? { SNAPWATCH_SLACK_WEBHOOK_SECRET_ARN = var.slack_webhook_secret_arn } : {},
  )
}

resource "aws_cloudwatch_log_group" "detector" {
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms_key_arn
  tags              = local.tags
}

resource "aws_lambda_function" "detector" {
  #checkov:skip=CKV_AWS_117:The function calls only AWS public endpoints and Slack; a VPC would add a NAT gateway (cost, one more failure point) and protect nothing it reads.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile the user owns; the zip comes from this repository's own build (make package-aws).
  #checkov:skip=CKV_AWS_116:Failed asynchronous invocations go to the on-failure destination (the same queue, see aws_lambda_function_event_invoke_config), which also records the error; a DLQ as well would queue every failure twice.
  function_name    = local.function_name
  description      = "snapwatch: links CloudTrail snapshot events into abuse chains and alerts once per chain"
  role             = aws_iam_role.detector.arn
  filename         = var.lambda_zip_path
  source_code_hash = filebase64sha256(var.lambda_zip_path)
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.lambda_architecture]
  memory_size      = var.lambda_memory_mb
  timeout          = var.lambda_timeout_seconds
  kms_key_arn      = local.kms_key_arn

  reserved_concurrent_executions = var.reserved_concurrency

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.detector.name
  }

  # The names the function reads (functions/aws and shared/core/src/config.rs `env`).
  environment {
    # SNAPWATCH_RESPONSE only while some rule responds: unset means every mode is off.
    variables = merge(
      local.function_environment,
      { SNAPWATCH_DEAD_LETTER_QUEUE_URL = aws_sqs_queue.dead_letters.url },
      local.response_enabled ? { SNAPWATCH_RESPONSE = local.response_setting } : {},
    )
  }

  # The policy must exist before the first invocation can log or write.
  depends_on = [aws_iam_role_policy.detector, aws_cloudwatch_log_group.detector]

  tags = local.tags
}

# EventBridge invokes asynchronously: Lambda retries twice, then keeps the event (with the error)
# in the dead-letter queue.
resource "aws_lambda_function_event_invoke_config" "detector" {
  function_name                = aws_lambda_function.detector.function_name
  maximum_retry_attempts       = 2
  maximum_event_age_in_seconds = var.maximum_event_age_seconds

  destination_config {
    on_failure {
      destination = aws_sqs_queue.dead_letters.arn
    }
  }
}

resource "aws_lambda_permission" "eventbridge" {
  statement_id  = "AllowSnapwatchRule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.detector.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.consumed.arn
}
