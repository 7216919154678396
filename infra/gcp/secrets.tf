# The Slack webhook URL. The module creates the secret only; its value is added out of band
# (`gcloud secrets versions add`), so it never appears in Terraform state.
resource "google_secret_manager_secret" "slack_webhook" {
  project   = var.project_id
  secret_id = var.slack_secret_id
  labels    = local.labels

  replication {
    auto {
      dynamic "customer_managed_encryption" {
        for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
        content {
          kms_key_name = customer_managed_encryption.value
        }
      }
    }
  }
}
