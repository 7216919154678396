//! Shared by the integration tests: reaching the Firestore emulator, and the fixtures.
#![allow(dead_code)]

use snapwatch_gcp::firestore::{Collections, FirestoreStore, FirestoreTarget};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// A store on the emulator in a project of its own (so concurrent test processes never share
/// documents), or `None` after a loud SKIPPED line when the emulator cannot exist here.
pub fn emulator_store(test: &str) -> Option<FirestoreStore> {
    let host = match std::env::var("FIRESTORE_EMULATOR_HOST") {
        Ok(host) if !host.trim().is_empty() => host,
        _ => {
            if let Ok(reason) = std::env::var("SNAPWATCH_FIRESTORE_UNAVAILABLE") {
                eprintln!("SKIPPED: {test}: Firestore emulator unavailable: {reason}");
                return None;
            }
            panic!(
                "{test}: FIRESTORE_EMULATOR_HOST is not set: run under tests/servers/with-servers.sh (make test does)"
            );
        }
    };
    assert!(
        host.starts_with("127.0.0.1:"),
        "{test}: FIRESTORE_EMULATOR_HOST={host:?} must be a loopback address"
    );
    let project = format!("snapwatch-{}-{}", test.replace('_', "-"), unique_suffix());
    let store = FirestoreStore::new(
        FirestoreTarget::emulator(&host, &project),
        Collections::with_prefix("t_"),
    )
    .unwrap_or_else(|e| panic!("{test}: cannot build the Firestore store: {e}"));
    Some(store)
}

pub fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// The project's own GCP fixtures (`tests/fixtures/gcp`), shared with the core's parser tests.
pub fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/gcp")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}
