locals {
  collections = {
    facts   = "${var.collection_prefix}facts"
    alerts  = "${var.collection_prefix}alerts"
    rejects = "${var.collection_prefix}rejects"
  }
  labels = merge({ app = "snapwatch" }, var.labels)
}

# One identity for the service and for the triggers that invoke it, holding only what it needs:
# Firestore user (project), Eventarc event receiver (project), Run invoker (this service only),
# and read access to the one Slack secret.
resource "google_service_account" "snapwatch" {
  project      = var.project_id
  account_id   = "${var.service_name}-run"
  display_name = "snapwatch detector (Cloud Run + Eventarc)"
}

resource "google_project_iam_member" "firestore_user" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.snapwatch.email}"
}

resource "google_project_iam_member" "event_receiver" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = "serviceAccount:${google_service_account.snapwatch.email}"
}

resource "google_cloud_run_v2_service_iam_member" "trigger_invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.snapwatch.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.snapwatch.email}"
}

resource "google_secret_manager_secret_iam_member" "slack_reader" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.slack_webhook.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.snapwatch.email}"
}
