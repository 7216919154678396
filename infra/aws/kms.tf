# One customer managed key encrypts the table, topic, queue, log group and the function's
# environment, so one key policy says who can read snapwatch's data.
resource "aws_kms_key" "snapwatch" {
  count = var.kms_key_arn == null ? 1 : 0

  description             = "snapwatch: chain state, alerts, dead letters and logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms[0].json
  tags                    = local.tags
}

resource "aws_kms_alias" "snapwatch" {
  count = var.kms_key_arn == null ? 1 : 0

  name          = "alias/${var.name_prefix}"
  target_key_id = aws_kms_key.snapwatch[0].key_id
}

# In a key policy, Resource "*" means "this key".
data "aws_iam_policy_document" "kms" {
  count = var.kms_key_arn == null ? 1 : 0

  statement {
    sid       = "AccountAdministersTheKey"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "LogsEncryptTheFunctionLogGroup"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values = [
        for name in concat([local.log_group_name], local.baseline_enabled ? [local.baseline_log_group_name] : [], local.archive_enabled ? [local.archive_log_group_name] : []) :
        "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${name}"
      ]
    }
  }

  # EventBridge writes events it could not deliver to the (encrypted) dead-letter queue.
  statement {
    sid       = "EventBridgeWritesDeadLetters"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}
