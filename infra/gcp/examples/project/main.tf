# Watch one project; alerts to the Slack webhook stored in Secret Manager. Deploy with
# `GCP_PROJECT=acme-prod make deploy-gcp` from the repository root (infra/gcp/deploy.sh), which
# builds the image and passes these variables; see ../../README.md, "First deployment".

terraform {
  required_version = ">= 1.5"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 5.30, < 7.0"
    }
  }
}

variable "project_id" {
  description = "The project to deploy into and watch."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Run service and the image repository."
  type        = string
  default     = "europe-west1"
}

variable "image" {
  description = "The snapwatch-gcp image, pinned by digest (deploy.sh passes the one it built)."
  type        = string
}

variable "slack_secret_version" {
  description = "Slack secret version to read, once one exists (deploy.sh sets \"latest\" after adding it)."
  type        = string
  default     = null
}

provider "google" {
  project = var.project_id
  region  = var.region
}

module "snapwatch" {
  source = "../.."

  project_id           = var.project_id
  region               = var.region
  image                = var.image
  slack_secret_version = var.slack_secret_version
  trusted_accounts     = ["acme-shared-images"]
  trusted_principals   = ["*@acme.example", "backup-runner@acme-prod.iam.gserviceaccount.com"]
  min_severity         = "medium"

  # Uncomment to watch every project in a folder from this one:
  # aggregated_sink_parent = "folders/123456789012"
}

output "slack_secret_id" {
  value = module.snapwatch.slack_secret_id
}

output "service_uri" {
  value = module.snapwatch.service_uri
}
