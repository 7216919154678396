//! A chain is judged in its own time: the window counts between a chain's own events, never from
//! the newest event of the scan, within one scan and across `--state` batches.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test, with its message"
)]

mod support;

use support::*;

/// The reproduction: a share on day 0 and an unrelated record in another account and
/// region some days later. The share is reported however late the scan ends.
#[test]
fn a_share_is_reported_however_late_the_scan_ends() {
    for later in [1, 29, 31, 400] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("trail.jsonl");
        write_lines(
            &file,
            &[
                share(
                    "e-share",
                    at(0, 0),
                    OWN,
                    "mallory",
                    "snap-0a1b2c3d4e5f60718",
                    OUTSIDE,
                ),
                open_ssh(
                    "e-later",
                    at(later, 0),
                    OTHER_OWN,
                    "eu-west-1",
                    "ops",
                    "sg-0fedcba9876543210",
                ),
            ],
        );
        let (found, stderr) = scan(None, &[&file]);
        assert_eq!(
            rules(&found),
            vec!["snapshot.shared-external"],
            "scan ending {later} days after the share: {stderr}"
        );
        let history = if later > 30 { 1 } else { 0 };
        assert!(
            stderr.contains(&format!(
                "from chains that ended more than 30 days before the newest event {history})"
            )),
            "{later} days: {stderr}"
        );
    }
}

/// The window is the chain's: a restore 45 days after the snapshot was made and shared is not
/// linked to it, however the scan is cut.
#[test]
fn a_restore_45_days_after_a_share_is_not_linked() {
    let snap = "snap-0a1b2c3d4e5f60718";
    let records = [
        create_snapshot("e-create", at(0, 0), OWN, "alice", snap),
        share("e-share", at(0, 60), OWN, "alice", snap, OUTSIDE),
        launch(
            "e-launch",
            at(45, 0),
            OWN,
            "mallory",
            snap,
            "i-0123456789abcdef0",
            "sg-0123456789abcdef0",
        ),
        open_ssh(
            "e-open",
            at(45, 60),
            OWN,
            "us-east-1",
            "mallory",
            "sg-0123456789abcdef0",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trail.jsonl");
    write_lines(&file, &records);
    let (found, stderr) = scan(None, &[&file]);
    assert_eq!(rules(&found), vec!["snapshot.shared-external"], "{stderr}");

    // The same launch 20 days after the share is one chain.
    let mut near = records.clone();
    near[2] = launch(
        "e-launch",
        at(20, 0),
        OWN,
        "mallory",
        snap,
        "i-0123456789abcdef0",
        "sg-0123456789abcdef0",
    );
    near[3] = open_ssh(
        "e-open",
        at(20, 60),
        OWN,
        "us-east-1",
        "mallory",
        "sg-0123456789abcdef0",
    );
    write_lines(&file, &near);
    let (found, stderr) = scan(None, &[&file]);
    assert_eq!(
        rules(&found),
        vec![
            "chain.exposed-restore",
            "snapshot.restored-by-other",
            "snapshot.shared-external"
        ],
        "{stderr}"
    );
}

/// An exposed restore whose opening comes 40 days after the snapshot's only known origin is two
/// chains that never met: each pair is within the window, the whole chain is not.
#[test]
fn a_chain_must_fit_in_one_window_of_its_own_events() {
    let snap = "snap-0a1b2c3d4e5f60718";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trail.jsonl");
    write_lines(
        &file,
        &[
            create_snapshot("e-create", at(0, 0), OWN, "alice", snap),
            launch(
                "e-launch",
                at(20, 0),
                OWN,
                "alice",
                snap,
                "i-0123456789abcdef0",
                "sg-0123456789abcdef0",
            ),
            open_ssh(
                "e-open",
                at(40, 0),
                OWN,
                "us-east-1",
                "mallory",
                "sg-0123456789abcdef0",
            ),
        ],
    );
    let (found, stderr) = scan(None, &[&file]);
    assert!(found.is_empty(), "{found:?} {stderr}");
}

/// Across `--state` batches the same rule holds: a later batch whose newest event is far past
/// an earlier batch's events still links to them within their window, and findings an earlier
/// batch completed are neither lost nor repeated.
#[test]
fn a_later_batch_cannot_expire_what_earlier_events_complete() {
    let snap = "snap-0a1b2c3d4e5f60718";
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let first = dir.path().join("day-000.jsonl");
    let second = dir.path().join("day-010.jsonl");
    write_lines(
        &first,
        &[
            create_snapshot("e-create", at(0, 0), OWN, "alice", snap),
            share("e-share", at(0, 60), OWN, "alice", snap, OUTSIDE),
        ],
    );
    write_lines(
        &second,
        &[
            create_volume(
                "e-volume",
                at(10, 0),
                OWN,
                "mallory",
                snap,
                "vol-0123456789abcdef0",
            ),
            open_ssh(
                "e-later",
                at(45, 0),
                OTHER_OWN,
                "eu-west-1",
                "ops",
                "sg-0fedcba9876543210",
            ),
            // The first batch's share again (an overlapping export): already reported.
            share("e-share", at(0, 60), OWN, "alice", snap, OUTSIDE),
        ],
    );
    let (one, stderr) = scan(Some(&state), &[&first]);
    assert_eq!(rules(&one), vec!["snapshot.shared-external"], "{stderr}");
    let (two, stderr) = scan(Some(&state), &[&second]);
    assert_eq!(rules(&two), vec!["snapshot.restored-by-other"], "{stderr}");
    assert!(stderr.contains("already reported in state 1"), "{stderr}");
}

/// The state file is purged by event time: facts that no later record can link to are dropped at
/// the end of a scan, even when the logs are years old (the wall clock would drop everything).
#[test]
fn the_state_file_keeps_only_facts_later_records_can_link_to() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let old = dir.path().join("old.jsonl");
    let records: Vec<_> = (0..20)
        .map(|i| {
            create_snapshot(
                &format!("e-{i}"),
                at(0, i * 60),
                OWN,
                "alice",
                &format!("snap-0a1b2c3d4e5f{i:05}"),
            )
        })
        .collect();
    write_lines(&old, &records);
    scan(Some(&state), &[&old]);
    let store = snapwatch_sqlite::SqliteStore::open(&state).unwrap();
    assert_eq!(
        store.fact_count().unwrap(),
        20,
        "a 2024 history is kept for the next batch"
    );
    drop(store);

    let later = dir.path().join("later.jsonl");
    write_lines(
        &later,
        &[open_ssh(
            "e-later",
            at(45, 0),
            OTHER_OWN,
            "eu-west-1",
            "ops",
            "sg-0fedcba9876543210",
        )],
    );
    scan(Some(&state), &[&later]);
    let store = snapwatch_sqlite::SqliteStore::open(&state).unwrap();
    assert_eq!(
        store.fact_count().unwrap(),
        1,
        "facts more than the window before every record of the batch are purged"
    );
}

/// Within one scan, facts are dropped as the scan moves on through a long history in time
/// order, while every chain in it is still reported.
#[test]
fn one_scan_over_a_year_keeps_about_one_window_of_facts() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let year = dir.path().join("year.jsonl");
    let records: Vec<_> = (0..12)
        .map(|month| {
            share(
                &format!("e-{month}"),
                at(month * 31, 0),
                OWN,
                "mallory",
                &format!("snap-0a1b2c3d4e5f{month:05}"),
                OUTSIDE,
            )
        })
        .collect();
    write_lines(&year, &records);
    let (found, stderr) = scan(Some(&state), &[&year]);
    assert_eq!(found.len(), 12, "{stderr}");
    assert!(stderr.contains("before the newest event 11)"), "{stderr}");
    let store = snapwatch_sqlite::SqliteStore::open(&state).unwrap();
    assert!(
        store.fact_count().unwrap() <= 2,
        "facts of eleven months ago are still held"
    );
}

/// An HTML report is one page however many intervals the scan evaluated: a finding from an
/// interval long before the end is on it, once, and the second scan with the same state has
/// nothing left to show.
#[test]
fn an_html_report_holds_the_findings_of_every_interval() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trail.jsonl");
    let snap = "snap-0a1b2c3d4e5f60718";
    write_lines(
        &file,
        &[
            share("e-share", at(0, 0), OWN, "mallory", snap, OUTSIDE),
            make_public("e-public", at(120, 0), OTHER_OWN, "mallory", snap),
            open_ssh(
                "e-later",
                at(400, 0),
                OTHER_OWN,
                "eu-west-1",
                "ops",
                "sg-0fedcba9876543210",
            ),
        ],
    );
    let state = dir.path().join("state.db");
    let (state, file) = (state.display().to_string(), file.display().to_string());
    let html = |expected: usize| {
        let out = snapwatch(&["scan", "--format", "html", "--state", &state, &file]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let page = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(page.matches("<!DOCTYPE html>").count(), 1, "one page");
        assert!(
            page.contains(&format!("data-findings=\"{expected}\"")),
            "{expected} findings: {stderr}"
        );
        page
    };
    let page = html(2);
    assert!(page.contains("snapshot.shared-external") && page.contains("snapshot.public"));
    html(0);
}
