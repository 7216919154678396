variable "project_id" {
  description = "The project to watch; the service, its state and its triggers live here."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Run service."
  type        = string
  default     = "europe-west1"
}

variable "image" {
  description = "Container image of snapwatch-gcp (built from functions/gcp/Dockerfile), ideally pinned by digest."
  type        = string
}

variable "service_name" {
  description = "Name of the Cloud Run service and prefix of the other resources."
  type        = string
  default     = "snapwatch"
}

variable "concurrency" {
  description = "Requests one instance handles at once. Each request is mostly waiting on Firestore, so a few dozen is cheap."
  type        = number
  default     = 40
}

variable "max_instances" {
  description = "Upper bound on instances, which also bounds the Firestore write rate."
  type        = number
  default     = 5
}

variable "firestore_database" {
  description = "Firestore database id created for snapwatch (a dedicated one, so the project's (default) database is left alone)."
  type        = string
  default     = "snapwatch"
}

variable "firestore_location" {
  description = "Firestore location id (e.g. eur3, nam5, europe-west1)."
  type        = string
  default     = "eur3"
}

variable "collection_prefix" {
  description = "Prefix of the facts, alerts and rejects collections."
  type        = string
  default     = "snapwatch_"
}

variable "trusted_accounts" {
  description = "Projects that are ours (sharing with them is not an alert)."
  type        = list(string)
  default     = []
}

variable "trusted_principals" {
  description = "Glob patterns of trusted principals, e.g. \"*@example.com\"."
  type        = list(string)
  default     = []
}

variable "window_days" {
  description = "How long facts link into chains (and stay in Firestore before TTL deletion)."
  type        = number
  default     = 30
}

variable "min_severity" {
  description = "Findings below this severity are logged but not sent to Slack."
  type        = string
  default     = "medium"
  validation {
    condition     = contains(["info", "low", "medium", "high", "critical"], var.min_severity)
    error_message = "min_severity must be one of info, low, medium, high, critical."
  }
}

variable "slack_secret_id" {
  description = "Secret Manager secret id holding the Slack webhook URL. The module creates the secret; see slack_webhook_url and slack_secret_version for its value."
  type        = string
  default     = "snapwatch-slack-webhook"
}

variable "slack_webhook_url" {
  description = "Optional Slack incoming webhook URL: the module stores it as the secret's first version (it is then in the Terraform state). Null: add the value out of band and set slack_secret_version."
  type        = string
  default     = null
  sensitive   = true
}

variable "slack_secret_version" {
  description = "Version of the Slack secret the service reads when the value was added out of band (`gcloud secrets versions add`), e.g. \"latest\" or \"1\". Null (and no slack_webhook_url): no Slack setting, findings are only logged. Set it only once a version exists: Cloud Run does not start a revision whose secret cannot be resolved."
  type        = string
  default     = null
  validation {
    condition     = var.slack_secret_version == null || can(regex("^(latest|[1-9][0-9]*)$", var.slack_secret_version))
    error_message = "slack_secret_version must be \"latest\" or a version number."
  }
}

variable "admin_ports" {
  description = "Ports whose opening to the internet completes an exposed-restore chain (all ports always count)."
  type        = list(number)
  default     = [22, 3389]
  validation {
    condition     = alltrue([for port in var.admin_ports : port >= 1 && port <= 65535 && floor(port) == port])
    error_message = "admin_ports must be port numbers between 1 and 65535."
  }
}

variable "kms_key_name" {
  description = "Optional Cloud KMS key for the Slack secret's replicas (customer-managed encryption). Null: Google-managed keys."
  type        = string
  default     = null
}

variable "aggregated_sink_parent" {
  description = "Optional \"organizations/123\" or \"folders/456\": an aggregated log sink forwards the compute audit entries of every project below it to this service through Pub/Sub. Null: watch this project only."
  type        = string
  default     = null
  validation {
    condition     = var.aggregated_sink_parent == null || can(regex("^(organizations|folders)/[0-9]+$", var.aggregated_sink_parent))
    error_message = "aggregated_sink_parent must look like organizations/123 or folders/456."
  }
}

variable "labels" {
  description = "Labels put on every resource that takes them."
  type        = map(string)
  default     = {}
}

variable "baseline_enabled" {
  description = "Deploy the snapshot baseline: Cloud Scheduler calls the service's POST /baseline, which lists each project's snapshots, images, machine images and disks with their IAM policies and alerts on what no received event explains. Off: nothing of it is created."
  type        = bool
  default     = false
}

variable "baseline_schedule" {
  description = "Cloud Scheduler cron expression (UTC) of the baseline runs."
  type        = string
  default     = "17 * * * *"

  validation {
    condition     = length(split(" ", trimspace(var.baseline_schedule))) == 5
    error_message = "baseline_schedule must be a five-field cron expression such as \"17 * * * *\"."
  }
}

variable "baseline_projects" {
  description = "Projects whose Compute Engine resources the baseline lists. Empty: project_id."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.baseline_projects : can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", p))])
    error_message = "baseline_projects must be project ids such as acme-prod."
  }
}

variable "baseline_timeout_seconds" {
  description = "Request timeout of the service when the baseline is on (and the scheduler's attempt deadline): every project's paginated list calls and one getIamPolicy per resource, with throttling back-off."
  type        = number
  default     = 300

  validation {
    condition     = var.baseline_timeout_seconds >= 60 && var.baseline_timeout_seconds <= 1800
    error_message = "baseline_timeout_seconds must be between 60 and 1800 (Cloud Scheduler's HTTP attempt deadline maximum)."
  }
}

variable "response_modes" {
  description = "Opt-in response per rule: off (default), dry-run (re-read; the alert says which call would be made) or enforce. GCP responds to snapshot.public and snapshot.shared-external (setIamPolicy without the added members) and chain.exposed-restore (disable the firewall rule the chain's event created). The service account gains the re-reads of each rule not off and the write of each rule in enforce mode; nothing when every rule is off. A snapshot, image or disk labelled snapwatch-exempt, or a firewall rule whose description contains snapwatch-exempt, is never changed."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for rule, mode in var.response_modes : contains(["snapshot.public", "snapshot.shared-external", "chain.exposed-restore"], rule) && contains(["off", "dry-run", "enforce"], mode)])
    error_message = "response_modes maps snapshot.public, snapshot.shared-external and chain.exposed-restore to off, dry-run or enforce."
  }
}

variable "response_projects" {
  description = "Projects the response may change resources in (where the watched events happen). Empty: project_id."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.response_projects : can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", p))])
    error_message = "response_projects must be project ids such as acme-prod."
  }
}
