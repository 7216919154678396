# Compute Engine's Admin Activity audit logs (every method snapwatch consumes) are always on and
# cannot be disabled. This makes the project's audit configuration for Compute explicit and
# adds ADMIN_READ (cheap, useful context for an investigation). The resource is authoritative
# for compute.googleapis.com: turn it off if the project manages audit configs elsewhere.
resource "google_project_iam_audit_config" "compute" {
  count = var.manage_compute_audit_config ? 1 : 0

  project = var.project_id
  service = "compute.googleapis.com"

  audit_log_config {
    log_type = "ADMIN_READ"
  }
}
