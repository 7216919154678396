# The EventBridge pattern for the CloudTrail calls the snapwatch core consumes. One list, used by
# the detector's rule and by every regional forwarder, so the two can never disagree.
#
# Keep `consumed` equal to `CONSUMED_EVENTS` in shared/core/src/parse/aws.rs (`snapwatch consumed
# aws` prints it): tests/infra/test_aws.py fails when they differ.

terraform {
  required_version = ">= 1.5"
}

locals {
  # eventSource => eventNames, exactly as CloudTrail spells them.
  consumed = {
    "ec2.amazonaws.com" = [
      "CreateSnapshot",
      "CreateSnapshots",
      "CopySnapshot",
      "CreateImage",
      "RegisterImage",
      "CopyImage",
      "ModifySnapshotAttribute",
      "ModifyImageAttribute",
      "SharedSnapshotVolumeCreated",
      "SharedSnapshotCopyInitiated",
      "CreateVolume",
      "AttachVolume",
      "RunInstances",
      "ModifyInstanceAttribute",
      "AuthorizeSecurityGroupIngress",
      "ModifySecurityGroupRules",
    ]
    # EBS direct APIs are CloudTrail data events: they reach EventBridge only when a trail logs
    # EBS data events (see the README).
    "ebs.amazonaws.com" = [
      "ListSnapshotBlocks",
      "ListChangedBlocks",
      "GetSnapshotBlock",
    ]
    "rds.amazonaws.com" = [
      "CreateDBSnapshot",
      "CreateDBClusterSnapshot",
      "CopyDBSnapshot",
      "CopyDBClusterSnapshot",
      "ModifyDBSnapshotAttribute",
      "ModifyDBClusterSnapshotAttribute",
      "StartExportTask",
      "RestoreDBInstanceFromDBSnapshot",
      "RestoreDBClusterFromSnapshot",
      "RestoreDBInstanceToPointInTime",
      "RestoreDBClusterToPointInTime",
      "RestoreDBInstanceFromS3",
      "RestoreDBClusterFromS3",
      "ModifyDBInstance",
      "ModifyDBCluster",
      "CreateDBInstance",
    ]
  }

  # EventBridge names the source after the service: ec2.amazonaws.com -> aws.ec2.
  event_bridge_source = { for event_source in keys(local.consumed) : event_source => "aws.${split(".", event_source)[0]}" }

  pattern = {
    source = sort(values(local.event_bridge_source))
    # SharedSnapshot* calls are made by the other account and arrive as service events.
    detail-type = ["AWS API Call via CloudTrail", "AWS Service Event via CloudTrail"]
    detail = {
      # Failed and dry-run calls never advance a chain.
      errorCode = [{ exists = false }]
      # Pair each name with its service: other services reuse names (Storage Gateway's
      # CreateSnapshot, for one).
      "$or" = [
        for event_source, names in local.consumed : {
          eventSource = [event_source]
          eventName   = names
        }
      ]
    }
  }
}

output "consumed_events" {
  description = "eventSource => eventNames the pattern matches."
  value       = local.consumed
}

output "sources" {
  description = "EventBridge sources (aws.ec2, …) of the consumed events."
  value       = sort(values(local.event_bridge_source))
}

output "event_pattern" {
  description = "The EventBridge event pattern, as a JSON string."
  value       = jsonencode(local.pattern)
}
