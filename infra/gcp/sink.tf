# Optional: watch every project under a folder or organization. An aggregated sink forwards the
# consumed compute audit entries to a Pub/Sub topic here, and one Eventarc trigger delivers
# them to the same service (which unwraps Pub/Sub messages). Facts from all projects share this
# project's Firestore database, so cross-project chains link up.
locals {
  aggregate         = var.aggregated_sink_parent != null
  aggregate_is_org  = local.aggregate && startswith(coalesce(var.aggregated_sink_parent, "-"), "organizations/")
  aggregate_id      = local.aggregate ? split("/", var.aggregated_sink_parent)[1] : ""
  aggregated_filter = "logName:\"cloudaudit.googleapis.com%2Factivity\" AND protoPayload.serviceName=(\"compute.googleapis.com\" OR \"cloudsql.googleapis.com\") AND protoPayload.methodName=(${join(" OR ", [for m in local.trigger_methods : "\"${m}\""])})"
}

resource "google_pubsub_topic" "aggregated" {
  count = local.aggregate ? 1 : 0

  project      = var.project_id
  name         = "${var.service_name}-audit-logs"
  labels       = local.labels
  kms_key_name = var.kms_key_name
}

resource "google_logging_organization_sink" "aggregated" {
  count = local.aggregate_is_org ? 1 : 0

  name             = "${var.service_name}-compute-audit"
  org_id           = local.aggregate_id
  include_children = true
  filter           = local.aggregated_filter
  destination      = "pubsub.googleapis.com/${google_pubsub_topic.aggregated[0].id}"
}

resource "google_logging_folder_sink" "aggregated" {
  count = local.aggregate && !local.aggregate_is_org ? 1 : 0

  name             = "${var.service_name}-compute-audit"
  folder           = local.aggregate_id
  include_children = true
  filter           = local.aggregated_filter
  destination      = "pubsub.googleapis.com/${google_pubsub_topic.aggregated[0].id}"
}

resource "google_pubsub_topic_iam_member" "sink_writer" {
  count = local.aggregate ? 1 : 0

  project = var.project_id
  topic   = google_pubsub_topic.aggregated[0].name
  role    = "roles/pubsub.publisher"
  member = (local.aggregate_is_org
    ? google_logging_organization_sink.aggregated[0].writer_identity
  : google_logging_folder_sink.aggregated[0].writer_identity)
}

resource "google_eventarc_trigger" "aggregated" {
  count = local.aggregate ? 1 : 0

  project         = var.project_id
  location        = var.region
  name            = "${var.service_name}-aggregated"
  service_account = google_service_account.snapwatch.email
  labels          = local.labels

  matching_criteria {
    attribute = "type"
    value     = "google.cloud.pubsub.topic.v1.messagePublished"
  }

  transport {
    pubsub {
      topic = google_pubsub_topic.aggregated[0].id
    }
  }

  destination {
    cloud_run_service {
      service = google_cloud_run_v2_service.snapwatch.name
      region  = var.region
      path    = "/"
    }
  }

  depends_on = [google_project_iam_member.event_receiver]
}
