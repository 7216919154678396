//! AWS CloudTrail records (bare, in S3 log files, or as EventBridge `detail`).
