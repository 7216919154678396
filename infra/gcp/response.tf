# Opt-in response (issue 13): what the service may read and change to close an exposure a
# finding names, and nothing when every mode is off (the default). A rule in dry-run gets the
# re-reads only; a rule in enforce mode adds the one write its undo needs.
locals {
  response_projects = length(var.response_projects) > 0 ? var.response_projects : [var.project_id]
  # Re-reads per rule: the exempt label (get) and the current policy or rule.
  response_reads = {
    # Shares the chain sees: snapshots, images and (zonal or regional) disks.
    "snapshot.public" = [
      "compute.disks.get",
      "compute.disks.getIamPolicy",
      "compute.images.get",
      "compute.images.getIamPolicy",
      "compute.snapshots.get",
      "compute.snapshots.getIamPolicy",
    ]
    "snapshot.shared-external" = [
      "compute.disks.get",
      "compute.disks.getIamPolicy",
      "compute.images.get",
      "compute.images.getIamPolicy",
      "compute.snapshots.get",
      "compute.snapshots.getIamPolicy",
    ]
    "chain.exposed-restore" = [
      "compute.firewalls.get",
      # The patch's operation, polled to its end.
      "compute.globalOperations.get",
    ]
  }
  # The write per rule: setIamPolicy without the added members; the firewall patch (a firewall
  # change also needs the network's updatePolicy).
  response_writes = {
    "snapshot.public"          = ["compute.disks.setIamPolicy", "compute.images.setIamPolicy", "compute.snapshots.setIamPolicy"]
    "snapshot.shared-external" = ["compute.disks.setIamPolicy", "compute.images.setIamPolicy", "compute.snapshots.setIamPolicy"]
    "chain.exposed-restore"    = ["compute.firewalls.update", "compute.networks.updatePolicy"]
  }
  response_active   = sort([for rule, mode in var.response_modes : rule if mode != "off"])
  response_enforced = sort([for rule, mode in var.response_modes : rule if mode == "enforce"])
  response_permissions = sort(distinct(concat(
    flatten([for rule in local.response_active : local.response_reads[rule]]),
    flatten([for rule in local.response_enforced : local.response_writes[rule]]),
  )))
  # SNAPWATCH_RESPONSE's form: `rule=mode,rule=mode` (absent: every rule off).
  response_setting = join(",", [for rule, mode in var.response_modes : "${rule}=${mode}" if mode != "off"])
}

# A project custom role can only be granted in its own project: one per project responded in.
resource "google_project_iam_custom_role" "response" {
  for_each = length(local.response_active) > 0 ? toset(local.response_projects) : toset([])

  project     = each.value
  role_id     = "snapwatchResponse"
  title       = "snapwatch response"
  description = "Opt-in response: re-read, and in enforce mode undo, what a finding's chain added (${join(", ", local.response_active)})."
  permissions = local.response_permissions
  stage       = "GA"
}

resource "google_project_iam_member" "response" {
  for_each = google_project_iam_custom_role.response

  project = each.value.project
  role    = each.value.name
  member  = "serviceAccount:${google_service_account.snapwatch.email}"
}
