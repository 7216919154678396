//! GCP Cloud Audit Log entries (LogEntry, Eventarc CloudEvents).
