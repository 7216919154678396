# The Slack webhook URL. The module always creates the secret; Cloud Run refers to it only once a
# version exists (it refuses to start an instance whose secret cannot be resolved):
#   - `slack_webhook_url` set: the module adds the version (the URL is then in the Terraform state);
#   - `slack_secret_version` set (e.g. "latest") after `gcloud secrets versions add`: that version;
#   - neither: no Slack setting at all, and the service only logs findings.
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

resource "google_secret_manager_secret_version" "slack_webhook" {
  count = local.slack_from_variable ? 1 : 0

  secret      = google_secret_manager_secret.slack_webhook.id
  secret_data = var.slack_webhook_url
}

locals {
  # Whether a URL was given is not itself secret; its value stays sensitive.
  slack_from_variable = nonsensitive(var.slack_webhook_url != null)
  # The version Cloud Run resolves, or null for no Slack setting.
  slack_secret_version = (local.slack_from_variable
    ? one(google_secret_manager_secret_version.slack_webhook[*].version)
  : var.slack_secret_version)
}
