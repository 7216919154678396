//! Every public sample in `../shared/corpus` (when present) through the same dispatch the CLI
//! uses: nothing panics, the invalid-JSON samples are rejected with a reason, and the attack
//! samples produce facts. The repository does not ship the corpus; without it this test says so.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

use snapwatch_core::parse::detect::for_each_record;
use snapwatch_core::parse::Parsed;
use std::path::Path;

/// Samples that show an attack step and must yield at least one fact.
const ATTACK_SAMPLES: &[&str] = &[
    "aws/ModifySnapshotAttribute_add_group_all_public_panther.json",
    "aws/ModifySnapshotAttribute_add_userId_external_stratus.json",
    "aws/ModifyDBSnapshotAttribute_restore_valuesToAdd_stratus.json",
    "aws/ModifyImageAttribute_launchPermission_add_stratus.json",
    "aws/AuthorizeSecurityGroupIngress_port22_world_open_stratus.json",
    "aws/RunInstances_with_bdm_snapshotId_panther.json",
    "aws/CreateVolume_from_snapshotId_custodian.json",
    "aws/StartExportTask_rds_snapshot_to_s3_panther.json",
    "aws/SharedSnapshotCopyInitiated_attacker_copy_stratus_abridged.json",
    "azure/disks_write_from_snapshot_real_thesis_lab.json",
    "azure/snapshots_write_from_osdisk_real_thesis_lab.json",
    "azure/virtualMachines_write_attach_restored_disk_real_thesis_lab.json",
    "azure/disks_beginGetAccess_action_success_panther.json",
    "gcp/compute.firewalls.insert_tcp80_no_sourceRanges_scc_fixture.json",
    "gcp/compute.snapshots.insert_panther.json",
];

#[test]
fn every_corpus_sample_parses_or_is_rejected_with_a_reason() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    if !root.is_dir() {
        eprintln!(
            "corpus test: {} not present on this machine; nothing to check",
            root.display()
        );
        return;
    }
    let mut files = 0;
    for cloud in ["aws", "azure", "gcp"] {
        let mut entries: Vec<_> = std::fs::read_dir(root.join(cloud))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let name = format!("{cloud}/{}", path.file_name().unwrap().to_string_lossy());
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).to_string();
            files += 1;
            // A file may hold one record or a JSON array of them, as the CLI reads it.
            let units: Vec<String> = match serde_json::from_str::<Vec<serde_json::Value>>(&text) {
                Ok(items) => items.iter().map(|v| v.to_string()).collect(),
                Err(_) => vec![text.clone()],
            };
            let mut facts = 0;
            let mut errors = Vec::new();
            let mut records = 0;
            for unit in &units {
                for_each_record(unit, &mut |o| {
                    records += 1;
                    match o.result {
                        Ok(Parsed::Event(e)) => facts += e.facts.len(),
                        Ok(Parsed::Skipped(_)) => {}
                        Err(e) => errors.push(e.to_string()),
                    }
                });
            }
            assert!(records > 0, "{name}: no outcome");
            if name.ends_with(".INVALID_JSON.txt") {
                assert_eq!(
                    errors.len(),
                    records,
                    "{name}: invalid JSON must be rejected"
                );
                assert!(
                    errors.iter().all(|e| !e.is_empty()),
                    "{name}: a reason is given"
                );
            }
            if ATTACK_SAMPLES.contains(&name.as_str()) {
                assert!(
                    facts > 0,
                    "{name}: attack sample produced no facts ({errors:?})"
                );
            }
        }
    }
    assert!(files >= 90, "expected the 90+ corpus files, found {files}");
}
