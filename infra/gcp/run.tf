resource "google_cloud_run_v2_service" "snapwatch" {
  project  = var.project_id
  name     = var.service_name
  location = var.region
  labels   = local.labels
  # Only Eventarc (through Pub/Sub push inside Google's network) calls it; nothing public.
  ingress = "INGRESS_TRAFFIC_INTERNAL_ONLY"

  template {
    service_account                  = google_service_account.snapwatch.email
    max_instance_request_concurrency = var.concurrency
    # A baseline run lists whole projects in one request; event deliveries take milliseconds.
    timeout = local.baseline_enabled ? "${var.baseline_timeout_seconds}s" : "60s"

    scaling {
      min_instance_count = 0
      max_instance_count = var.max_instances
    }

    containers {
      image = var.image

      resources {
        limits = {
          cpu    = "1"
          memory = "256Mi"
        }
        cpu_idle = true
      }

      env {
        name  = "SNAPWATCH_FIRESTORE_PROJECT"
        value = var.project_id
      }
      env {
        name  = "SNAPWATCH_FIRESTORE_DATABASE"
        value = google_firestore_database.snapwatch.name
      }
      env {
        name  = "SNAPWATCH_COLLECTION_PREFIX"
        value = var.collection_prefix
      }
      env {
        name  = "SNAPWATCH_TRUSTED_ACCOUNTS"
        value = join(",", concat([var.project_id], var.trusted_accounts))
      }
      env {
        name  = "SNAPWATCH_TRUSTED_PRINCIPALS"
        value = join(",", var.trusted_principals)
      }
      env {
        name  = "SNAPWATCH_WINDOW_DAYS"
        value = tostring(var.window_days)
      }
      env {
        name  = "SNAPWATCH_MIN_SEVERITY"
        value = var.min_severity
      }
      env {
        name  = "SNAPWATCH_ADMIN_PORTS"
        value = join(",", [for port in var.admin_ports : tostring(port)])
      }
      # The response modes (response.tf); absent when every rule is off.
      dynamic "env" {
        for_each = local.response_setting == "" ? [] : [local.response_setting]
        content {
          name  = "SNAPWATCH_RESPONSE"
          value = env.value
        }
      }
      dynamic "env" {
        for_each = local.baseline_enabled ? [join(",", local.baseline_projects)] : []
        content {
          name  = "SNAPWATCH_BASELINE_PROJECTS"
          value = env.value
        }
      }
      # The webhook is a credential: referenced from Secret Manager, never inlined, and only once
      # a version exists (secrets.tf).
      dynamic "env" {
        for_each = local.slack_secret_version == null ? [] : [local.slack_secret_version]
        content {
          name = "SNAPWATCH_SLACK_WEBHOOK_URL"
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.slack_webhook.secret_id
              version = env.value
            }
          }
        }
      }

      startup_probe {
        http_get {
          path = "/healthz"
        }
      }
    }
  }

  # The identity must be able to read the secret (and the version must exist) before a revision
  # that refers to it starts.
  depends_on = [
    google_secret_manager_secret_iam_member.slack_reader,
    google_secret_manager_secret_version.slack_webhook,
  ]
}
