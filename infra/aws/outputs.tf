output "function_name" {
  description = "Name of the detector Lambda."
  value       = aws_lambda_function.detector.function_name
}

output "function_arn" {
  description = "ARN of the detector Lambda."
  value       = aws_lambda_function.detector.arn
}

output "role_arn" {
  description = "Execution role of the detector Lambda."
  value       = aws_iam_role.detector.arn
}

output "table_name" {
  description = "DynamoDB table holding chain state."
  value       = aws_dynamodb_table.state.name
}

output "table_arn" {
  description = "ARN of the chain-state table."
  value       = aws_dynamodb_table.state.arn
}

output "alerts_topic_arn" {
  description = "SNS topic the findings are published to; subscribe here (filter on the rule, severity, cloud attributes)."
  value       = aws_sns_topic.alerts.arn
}

output "dead_letter_queue_url" {
  description = "SQS queue keeping events that could not be parsed or delivered."
  value       = aws_sqs_queue.dead_letters.url
}

output "dead_letter_queue_arn" {
  description = "ARN of the dead-letter queue."
  value       = aws_sqs_queue.dead_letters.arn
}

output "rule_name" {
  description = "EventBridge rule matching the consumed CloudTrail calls."
  value       = aws_cloudwatch_event_rule.consumed.name
}

output "rule_arn" {
  description = "ARN of the EventBridge rule."
  value       = aws_cloudwatch_event_rule.consumed.arn
}

output "event_pattern" {
  description = "The rule's event pattern (JSON)."
  value       = module.event_pattern.event_pattern
}

output "event_bus_name" {
  description = "Bus the rule listens on: `default`, or the central bus in organization mode."
  value       = local.event_bus_name
}

output "central_event_bus_arn" {
  description = "Organization mode: ARN of the central bus that member accounts forward to (null otherwise)."
  value       = local.organization_mode ? aws_cloudwatch_event_bus.central[0].arn : null
}

output "kms_key_arn" {
  description = "KMS key encrypting the table, topic, queue, logs and environment."
  value       = local.kms_key_arn
}

output "baseline_function_name" {
  description = "Name of the snapshot baseline Lambda (null unless baseline_enabled)."
  value       = one(aws_lambda_function.baseline[*].function_name)
}

output "baseline_function_arn" {
  description = "ARN of the snapshot baseline Lambda (null unless baseline_enabled)."
  value       = one(aws_lambda_function.baseline[*].arn)
}

output "baseline_role_arn" {
  description = "Execution role of the baseline Lambda: read-only snapshot listing plus the detector's state access (null unless baseline_enabled)."
  value       = one(aws_iam_role.baseline[*].arn)
}

output "baseline_schedule_name" {
  description = "EventBridge Scheduler schedule running the baseline, in the default group (null unless baseline_enabled)."
  value       = one(aws_scheduler_schedule.baseline[*].name)
}

output "baseline_schedule_arn" {
  description = "ARN of the baseline schedule (null unless baseline_enabled)."
  value       = one(aws_scheduler_schedule.baseline[*].arn)
}

output "baseline_scheduler_role_arn" {
  description = "Role the schedule invokes the baseline with: lambda:InvokeFunction on that function only (null unless baseline_enabled)."
  value       = one(aws_iam_role.baseline_scheduler[*].arn)
}

output "archive_function_name" {
  description = "Name of the archive Lambda (null unless archive_bucket_name is set)."
  value       = one(aws_lambda_function.archive[*].function_name)
}

output "archive_role_arn" {
  description = "Execution role of the archive Lambda: the detector's state access, its queue, s3:GetObject on the trail's AWSLogs/ (null unless archive_bucket_name is set)."
  value       = one(aws_iam_role.archive[*].arn)
}

output "archive_queue_arn" {
  description = "Queue the trail bucket notifies (null unless archive_bucket_name is set)."
  value       = one(aws_sqs_queue.archive[*].arn)
}

output "archive_queue_url" {
  description = "URL of the notification queue (null unless archive_bucket_name is set)."
  value       = one(aws_sqs_queue.archive[*].url)
}

output "archive_dead_letter_queue_url" {
  description = "Notifications whose log file kept failing (null unless archive_bucket_name is set)."
  value       = one(aws_sqs_queue.archive_dead_letters[*].url)
}

output "archive_notification_filter" {
  description = "Prefix and suffix of the bucket notification, for adding it to an existing configuration (null unless archive_bucket_name is set)."
  value       = local.archive_enabled ? { prefix = local.archive_key_prefix, suffix = ".json.gz" } : null
}
