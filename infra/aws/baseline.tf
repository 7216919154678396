# Snapshot baseline (issue 6): on a schedule, a second function lists the account's EBS
# snapshots, AMIs and RDS DB/cluster snapshots with their sharing attributes in every configured
# region, and raises findings for what the event stream missed. Everything here exists only when
# baseline_enabled (count 0 otherwise).

locals {
  baseline_enabled        = var.baseline_enabled
  baseline_name           = "${var.name_prefix}-baseline"
  baseline_log_group_name = "/aws/lambda/${local.baseline_name}"
  baseline_regions        = length(var.baseline_regions) > 0 ? var.baseline_regions : [local.region]

  # Read-only listing of snapshots and AMIs, and of their createVolumePermission /
  # launchPermission / restore attributes (the sharing). sts:GetCallerIdentity (the account id)
  # needs no permission. The listing calls take no resource-level permission (EC2) or are made
  # for every snapshot of the account (RDS); the attribute calls name one snapshot each, so
  # they are limited to this account's snapshots and AMIs in the listed regions.
  baseline_listing_actions = [
    "ec2:DescribeSnapshots",
    "ec2:DescribeImages",
    "rds:DescribeDBSnapshots",
    "rds:DescribeDBClusterSnapshots",
  ]
  baseline_attribute_actions = [
    "ec2:DescribeSnapshotAttribute",
    "ec2:DescribeImageAttribute",
    "rds:DescribeDBSnapshotAttributes",
    "rds:DescribeDBClusterSnapshotAttributes",
  ]
  # EC2 snapshot and image ARNs carry no account id; the region limits them.
  baseline_attribute_resources = flatten([
    for region in local.baseline_regions : [
      "arn:${local.partition}:ec2:${region}::snapshot/*",
      "arn:${local.partition}:ec2:${region}::image/*",
      "arn:${local.partition}:rds:${region}:${local.account_id}:snapshot:*",
      "arn:${local.partition}:rds:${region}:${local.account_id}:cluster-snapshot:*",
    ]
  ])

  # A failed run is retried by Lambda; after an hour the next scheduled run (default hourly)
  # checks everything again anyway, so an older retry is only noise.
  baseline_maximum_event_age_seconds = 3600
}

resource "aws_cloudwatch_log_group" "baseline" {
  count = local.baseline_enabled ? 1 : 0

  name              = local.baseline_log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms_key_arn
  tags              = local.tags
}

resource "aws_lambda_function" "baseline" {
  #checkov:skip=CKV_AWS_117:The function calls only AWS public endpoints and Slack; a VPC would add a NAT gateway (cost, one more failure point) and protect nothing it reads.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile the user owns; the zip comes from this repository's own build (make package-aws).
  #checkov:skip=CKV_AWS_116:Failed asynchronous invocations go to the on-failure destination (the module's dead-letter queue, see aws_lambda_function_event_invoke_config.baseline), which also records the error; a DLQ as well would queue every failure twice.
  count = local.baseline_enabled ? 1 : 0

  function_name = local.baseline_name
  description   = "snapwatch: scheduled snapshot baseline, alerts on shared or public snapshots no event explained"
  role          = aws_iam_role.baseline[0].arn
  filename      = var.baseline_zip_path
  # Null only when the precondition below fails anyway; it keeps the error the precondition's.
  source_code_hash = var.baseline_zip_path == null ? null : filebase64sha256(var.baseline_zip_path)
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.lambda_architecture]
  memory_size      = var.baseline_memory_mb
  timeout          = var.baseline_timeout_seconds
  kms_key_arn      = local.kms_key_arn

  # One baseline at a time per account: two overlapping runs would compare the same snapshots
  # and race on the same chain claims for nothing.
  reserved_concurrent_executions = 1

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.baseline[0].name
  }

  # The detector's settings, without the dead-letter queue URL (the baseline sends no records
  # there itself), plus the regions to list.
  environment {
    variables = merge(local.function_environment, {
      SNAPWATCH_BASELINE_REGIONS = join(",", local.baseline_regions)
    })
  }

  lifecycle {
    precondition {
      condition     = var.baseline_zip_path != null
      error_message = "baseline_zip_path is required when baseline_enabled is true: the zip `make package-aws` builds at target/lambda/snapwatch-aws-baseline/bootstrap.zip."
    }
  }

  # The policy must exist before the first invocation can log or read.
  depends_on = [aws_iam_role_policy.baseline, aws_cloudwatch_log_group.baseline]

  tags = local.tags
}

# EventBridge Scheduler invokes Lambda asynchronously, so a run that fails (a region could not
# be checked) is retried by Lambda, twice; then the failure and its error go to the module's
# dead-letter queue, beside the detector's.
resource "aws_lambda_function_event_invoke_config" "baseline" {
  count = local.baseline_enabled ? 1 : 0

  function_name                = aws_lambda_function.baseline[0].function_name
  maximum_retry_attempts       = 2
  maximum_event_age_in_seconds = local.baseline_maximum_event_age_seconds

  destination_config {
    on_failure {
      destination = aws_sqs_queue.dead_letters.arn
    }
  }
}

# ---- the function's role: read-only listing plus the detector's state access ----------------

resource "aws_iam_role" "baseline" {
  count = local.baseline_enabled ? 1 : 0

  name                 = local.baseline_name
  assume_role_policy   = data.aws_iam_policy_document.assume_lambda.json
  max_session_duration = 3600
  tags                 = local.tags
}

data "aws_iam_policy_document" "baseline" {
  count = local.baseline_enabled ? 1 : 0

  # The same table actions, topic, dead-letter queue, key, tracing and Slack secret as the
  # detector, on exactly the same resources.
  source_policy_documents = [data.aws_iam_policy_document.state_access.json]

  statement {
    #checkov:skip=CKV_AWS_356:SnapshotListing: ec2:DescribeSnapshots and ec2:DescribeImages support no resource-level permissions, and the RDS Describe calls list every snapshot of the account (no identifier). The attribute calls are limited to this account's snapshot ARNs (SnapshotAttributes).
    sid       = "SnapshotListing"
    actions   = local.baseline_listing_actions
    resources = ["*"]
  }

  statement {
    sid       = "SnapshotAttributes"
    actions   = local.baseline_attribute_actions
    resources = local.baseline_attribute_resources
  }

  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.baseline[0].arn}:*"]
  }
}

resource "aws_iam_role_policy" "baseline" {
  count = local.baseline_enabled ? 1 : 0

  name   = local.baseline_name
  role   = aws_iam_role.baseline[0].id
  policy = data.aws_iam_policy_document.baseline[0].json
}

# ---- the schedule and its role: may invoke this one function, nothing else -------------------

data "aws_iam_policy_document" "assume_baseline_scheduler" {
  count = local.baseline_enabled ? 1 : 0

  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "baseline_scheduler" {
  count = local.baseline_enabled ? 1 : 0

  name                 = "${local.baseline_name}-scheduler"
  assume_role_policy   = data.aws_iam_policy_document.assume_baseline_scheduler[0].json
  max_session_duration = 3600
  tags                 = local.tags
}

data "aws_iam_policy_document" "baseline_scheduler" {
  count = local.baseline_enabled ? 1 : 0

  statement {
    sid       = "InvokeBaseline"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.baseline[0].arn]
  }
}

resource "aws_iam_role_policy" "baseline_scheduler" {
  count = local.baseline_enabled ? 1 : 0

  name   = "${local.baseline_name}-scheduler"
  role   = aws_iam_role.baseline_scheduler[0].id
  policy = data.aws_iam_policy_document.baseline_scheduler[0].json
}

resource "aws_scheduler_schedule" "baseline" {
  #checkov:skip=CKV_AWS_297:The schedule's only data is the constant input {}; a customer managed key would protect nothing and would need kms:Decrypt on the scheduler role, which may only invoke the function.
  count = local.baseline_enabled ? 1 : 0

  name        = local.baseline_name
  group_name  = "default"
  description = "snapwatch: runs the snapshot baseline"

  schedule_expression          = var.baseline_schedule
  schedule_expression_timezone = "UTC"
  state                        = "ENABLED"

  # On time, every time: nothing is gained by spreading a single invocation.
  flexible_time_window {
    mode = "OFF"
  }

  # No scheduler dead-letter queue: delivering one would need sqs:SendMessage and kms on this
  # role. Failed runs reach the queue through the function's on-failure destination instead;
  # what is left here (the invocation itself refused) is retried until the next run is due.
  target {
    arn      = aws_lambda_function.baseline[0].arn
    role_arn = aws_iam_role.baseline_scheduler[0].arn
    input    = jsonencode({})

    retry_policy {
      maximum_event_age_in_seconds = local.baseline_maximum_event_age_seconds
      maximum_retry_attempts       = 185
    }
  }

  depends_on = [aws_iam_role_policy.baseline_scheduler]
}
