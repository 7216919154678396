# One trigger per consumed audit-log method. Compute Engine audit entries are global, so the
# triggers live in `global` whatever the service's region.
resource "google_eventarc_trigger" "audit_log" {
  for_each = toset(local.trigger_methods)

  project         = var.project_id
  location        = "global"
  name            = "${var.service_name}-${lower(replace(replace(each.value, "compute.", ""), ".", "-"))}"
  service_account = google_service_account.snapwatch.email
  labels          = local.labels

  matching_criteria {
    attribute = "type"
    value     = "google.cloud.audit.log.v1.written"
  }
  matching_criteria {
    attribute = "serviceName"
    value     = startswith(each.value, "cloudsql.") ? "cloudsql.googleapis.com" : "compute.googleapis.com"
  }
  matching_criteria {
    attribute = "methodName"
    value     = each.value
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
