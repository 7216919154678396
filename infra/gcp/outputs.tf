output "service_uri" {
  description = "URL of the Cloud Run service (internal ingress only)."
  value       = google_cloud_run_v2_service.snapwatch.uri
}

output "service_account_email" {
  description = "The identity the service and its triggers run as."
  value       = google_service_account.snapwatch.email
}

output "firestore_database" {
  description = "Firestore database holding chain state."
  value       = google_firestore_database.snapwatch.name
}

output "slack_secret_id" {
  description = "Add the Slack webhook URL here (gcloud secrets versions add <id> --data-file=-), then set slack_secret_version."
  value       = google_secret_manager_secret.slack_webhook.secret_id
}

output "trigger_methods" {
  description = "Audit-log methods with an Eventarc trigger."
  value       = sort(keys(google_eventarc_trigger.audit_log))
}

output "aggregated_topic" {
  description = "Pub/Sub topic fed by the aggregated sink (null when not used)."
  value       = local.aggregate ? google_pubsub_topic.aggregated[0].id : null
}
