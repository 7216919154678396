locals {
  # The audit-log methods snapwatch_core consumes (snapwatch_core::parse::gcp::trigger_method_names()):
  # each consumed suffix under the v1 and beta API versions. tests/infra/test_gcp.py checks that this
  # list and the core's list are the same.
  trigger_methods = [
    "v1.compute.snapshots.insert",
    "beta.compute.snapshots.insert",
    "v1.compute.disks.createSnapshot",
    "beta.compute.disks.createSnapshot",
    "v1.compute.snapshots.setIamPolicy",
    "beta.compute.snapshots.setIamPolicy",
    "v1.compute.images.setIamPolicy",
    "beta.compute.images.setIamPolicy",
    "v1.compute.disks.setIamPolicy",
    "beta.compute.disks.setIamPolicy",
    "v1.compute.disks.insert",
    "beta.compute.disks.insert",
    "v1.compute.images.insert",
    "beta.compute.images.insert",
    "v1.compute.instances.insert",
    "beta.compute.instances.insert",
    "v1.compute.instances.attachDisk",
    "beta.compute.instances.attachDisk",
    "v1.compute.firewalls.insert",
    "beta.compute.firewalls.insert",
    "v1.compute.firewalls.patch",
    "beta.compute.firewalls.patch",
    "v1.compute.firewalls.update",
    "beta.compute.firewalls.update",
    # Cloud SQL logs its methods without an API version, under cloudsql.googleapis.com.
    "cloudsql.instances.restoreBackup",
    "cloudsql.instances.clone",
    "cloudsql.instances.create",
    "cloudsql.instances.update",
  ]
}
