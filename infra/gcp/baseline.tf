# Snapshot baseline (issue 14): Cloud Scheduler POSTs /baseline on the service, which lists each
# project's snapshots, images, machine images and disks with their IAM policies and alerts on
# exposures and changes no received event explains. Opt-in: nothing of it exists unless
# baseline_enabled.
locals {
  baseline_enabled  = var.baseline_enabled
  baseline_projects = length(var.baseline_projects) > 0 ? var.baseline_projects : [var.project_id]
  # Exactly what the listing calls: list and getIamPolicy per collection. Regional disks are
  # listed by the aggregated disk list and read with the compute.disks.* permissions.
  baseline_permissions = [
    "compute.disks.getIamPolicy",
    "compute.disks.list",
    "compute.images.getIamPolicy",
    "compute.images.list",
    "compute.machineImages.getIamPolicy",
    "compute.machineImages.list",
    "compute.snapshots.getIamPolicy",
    "compute.snapshots.list",
  ]
}

# A project custom role can only be granted in its own project: one per listed project.
resource "google_project_iam_custom_role" "baseline_reader" {
  for_each = local.baseline_enabled ? toset(local.baseline_projects) : toset([])

  project     = each.value
  role_id     = "snapwatchBaselineReader"
  title       = "snapwatch baseline reader"
  description = "Lists snapshots, images, machine images and disks and reads their IAM policies (read-only)."
  permissions = local.baseline_permissions
  stage       = "GA"
}

# Granted to the service's own account: the listing runs inside the service with its metadata
# token.
resource "google_project_iam_member" "baseline_reader" {
  for_each = google_project_iam_custom_role.baseline_reader

  project = each.value.project
  role    = each.value.name
  member  = "serviceAccount:${google_service_account.snapwatch.email}"
}

# The scheduler's own identity: it may invoke this service and nothing else.
resource "google_service_account" "baseline_invoker" {
  count = local.baseline_enabled ? 1 : 0

  project      = var.project_id
  account_id   = "${var.service_name}-baseline"
  display_name = "snapwatch baseline scheduler (invokes POST /baseline)"
}

resource "google_cloud_run_v2_service_iam_member" "baseline_invoker" {
  count = local.baseline_enabled ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.snapwatch.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.baseline_invoker[0].email}"
}

# The job sends an OIDC token of the invoker account with the service URL as audience; Cloud Run
# verifies it (the service allows no unauthenticated calls) before the request reaches the
# container. Cloud Scheduler in the service's project counts as internal ingress.
resource "google_cloud_scheduler_job" "baseline" {
  count = local.baseline_enabled ? 1 : 0

  project          = var.project_id
  region           = var.region
  name             = "${var.service_name}-baseline"
  description      = "snapwatch: scheduled snapshot baseline"
  schedule         = var.baseline_schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = "${var.baseline_timeout_seconds}s"

  # A failed run is retried; the next scheduled run retries anyway, so a few attempts suffice.
  retry_config {
    retry_count          = 3
    min_backoff_duration = "60s"
    max_backoff_duration = "600s"
  }

  http_target {
    http_method = "POST"
    uri         = "${google_cloud_run_v2_service.snapwatch.uri}/baseline"

    oidc_token {
      service_account_email = google_service_account.baseline_invoker[0].email
      audience              = google_cloud_run_v2_service.snapwatch.uri
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.baseline_invoker]
}
