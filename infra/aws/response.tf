# The opt-in response (issue 13, README "Response"): the detector undoes what a finding's chain
# added. Its role gains only what the rules whose mode is not off need: the re-reads for
# dry-run and enforce, the remove/revoke calls for enforce, and nothing at all when every mode
# is off (the policy document below then does not exist). An exempt tag is checked by the
# function's re-read, never expressed as an IAM condition: a condition cannot see what the
# chain added.
locals {
  response_active   = { for rule, mode in var.response_modes : rule => mode if mode != "off" }
  response_enforced = [for rule, mode in var.response_modes : rule if mode == "enforce"]
  response_enabled  = length(local.response_active) > 0

  response_share_rules     = ["snapshot.public", "snapshot.shared-external"]
  response_shares          = length(setintersection(keys(local.response_active), local.response_share_rules)) > 0
  response_shares_enforced = length(setintersection(local.response_enforced, local.response_share_rules)) > 0
  response_ingress         = contains(keys(local.response_active), "chain.exposed-restore")
  response_ingress_enforce = contains(local.response_enforced, "chain.exposed-restore")

  # SNAPWATCH_RESPONSE: rule=mode pairs.
  response_setting = join(",", [for rule, mode in var.response_modes : "${rule}=${mode}"])

  # Chains arrive from every region (organization trails, forwarders); only this account's
  # resources. EC2 snapshot and image ARNs carry no account: the condition below adds it.
  response_share_resources = [
    "arn:${local.partition}:ec2:*::snapshot/*",
    "arn:${local.partition}:ec2:*::image/*",
    "arn:${local.partition}:rds:*:${local.account_id}:snapshot:*",
    "arn:${local.partition}:rds:*:${local.account_id}:cluster-snapshot:*",
  ]
  response_ingress_resources = [
    "arn:${local.partition}:ec2:*:${local.account_id}:security-group/*",
    "arn:${local.partition}:ec2:*:${local.account_id}:security-group-rule/*",
  ]
  response_share_read_actions = [
    "ec2:DescribeSnapshotAttribute",
    "ec2:DescribeImageAttribute",
    "rds:DescribeDBSnapshotAttributes",
    "rds:DescribeDBClusterSnapshotAttributes",
    "rds:ListTagsForResource",
  ]
  response_share_remove_actions = [
    "ec2:ModifySnapshotAttribute",
    "ec2:ModifyImageAttribute",
    "rds:ModifyDBSnapshotAttribute",
    "rds:ModifyDBClusterSnapshotAttribute",
  ]
}

data "aws_iam_policy_document" "response" {
  count = local.response_enabled ? 1 : 0

  # DescribeTags (the exempt tag) and DescribeSecurityGroupRules support no resource-level
  # permissions; both only read.
  statement {
    #checkov:skip=CKV_AWS_356:ec2:DescribeTags and ec2:DescribeSecurityGroupRules support no resource-level permissions; both are read-only.
    sid       = "ResponseDescribe"
    actions   = concat(["ec2:DescribeTags"], local.response_ingress ? ["ec2:DescribeSecurityGroupRules"] : [])
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = local.response_shares ? [1] : []
    content {
      sid       = "ResponseShareRead"
      actions   = local.response_share_read_actions
      resources = local.response_share_resources
    }
  }

  dynamic "statement" {
    for_each = local.response_shares_enforced ? [1] : []
    content {
      sid       = "ResponseShareRemove"
      actions   = local.response_share_remove_actions
      resources = local.response_share_resources
      condition {
        test     = "StringEquals"
        variable = "aws:ResourceAccount"
        values   = [local.account_id]
      }
    }
  }

  dynamic "statement" {
    for_each = local.response_ingress_enforce ? [1] : []
    content {
      sid       = "ResponseIngressRevoke"
      actions   = ["ec2:RevokeSecurityGroupIngress"]
      resources = local.response_ingress_resources
    }
  }
}
