resource "google_firestore_database" "snapwatch" {
  project                           = var.project_id
  name                              = var.firestore_database
  location_id                       = var.firestore_location
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "OPTIMISTIC"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
}

# TTL: Firestore deletes a document once its `expires_at` Timestamp has passed (within about a
# day; readers filter on it too). Facts live for the chain window, claims as long, rejects 30 days.
resource "google_firestore_field" "ttl" {
  for_each = local.collections

  project    = var.project_id
  database   = google_firestore_database.snapwatch.name
  collection = each.value
  field      = "expires_at"

  ttl_config {}
  # No single-field index on the TTL field: nothing queries it, and a monotonically growing
  # indexed timestamp is a write hotspot.
  index_config {}
}

# Fact bodies and rejected event bodies are large strings only ever read whole by id: exempt
# them from indexing (saves write cost and stays clear of index-entry size limits).
resource "google_firestore_field" "facts_unindexed" {
  project    = var.project_id
  database   = google_firestore_database.snapwatch.name
  collection = local.collections.facts
  field      = "facts"

  index_config {}
}

resource "google_firestore_field" "reject_body_unindexed" {
  project    = var.project_id
  database   = google_firestore_database.snapwatch.name
  collection = local.collections.rejects
  field      = "body"

  index_config {}
}
