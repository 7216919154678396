# Watch one project; alerts to the Slack webhook stored in Secret Manager.
provider "google" {
  project = "acme-prod"
  region  = "europe-west1"
}

module "snapwatch" {
  source = "../.."

  project_id         = "acme-prod"
  region             = "europe-west1"
  image              = "europe-west1-docker.pkg.dev/acme-prod/snapwatch/snapwatch-gcp@sha256:0000000000000000000000000000000000000000000000000000000000000000"
  trusted_accounts   = ["acme-shared-images"]
  trusted_principals = ["*@acme.example", "backup-runner@acme-prod.iam.gserviceaccount.com"]
  min_severity       = "medium"

  # Uncomment to watch every project in a folder from this one:
  # aggregated_sink_parent = "folders/123456789012"
}

output "slack_secret_id" {
  value = module.snapwatch.slack_secret_id
}
