use super::*;
use crate::model::{Cloud, FoundBy};

fn at(time: &str) -> DateTime<Utc> {
    time.parse().expect("test timestamp")
}

fn event(name: &str, time: &str, actor: &str, ip: &str) -> ChainEvent {
    ChainEvent {
        id: format!("id-{name}-{time}"),
        name: name.to_owned(),
        time: at(time),
        actor: Some(actor.to_owned()),
        source_ip: Some(ip.to_owned()),
    }
}

fn finding() -> Finding {
    let alice = "arn:aws:iam::111122223333:user/alice";
    let mallory = "arn:aws:iam::111122223333:user/mallory";
    Finding {
        id: "sw-0001".into(),
        rule: crate::model::Rule::ChainExposedRestore,
        severity: Severity::Critical,
        cloud: Cloud::Aws,
        account: "111122223333".into(),
        region: Some("us-east-1".into()),
        snapshot: "snap-0a".into(),
        resources: vec![
            "i-0b".into(),
            "sg-0c".into(),
            "snap-0a".into(),
            "vol-0d".into(),
        ],
        actors: vec![alice.into(), mallory.into()],
        techniques: vec!["T1578.001".into()],
        events: vec![
            event(
                "RunInstances",
                "2026-03-02T09:31:17Z",
                mallory,
                "198.51.100.23",
            ),
            event(
                "CreateSnapshot",
                "2026-03-02T09:01:10Z",
                alice,
                "203.0.113.50",
            ),
            event(
                "AuthorizeSecurityGroupIngress",
                "2026-03-02T09:33:02Z",
                mallory,
                "198.51.100.23",
            ),
        ],
        first_seen: at("2026-03-02T09:01:10Z"),
        last_seen: at("2026-03-02T09:33:02Z"),
        title: "instance restored and opened".into(),
        summary: "summary text".into(),
        next_steps: vec!["Isolate the instance.".into()],
        found_by: FoundBy::Events,
        response: None,
    }
}

/// Values an attacker chooses in a log: principal names, resource ids, event names.
const HOSTILE: [&str; 7] = [
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(2)>",
    "'onmouseover='alert(3)",
    "</style><script>alert(4)</script>",
    "evil\u{2028}line\u{2029}para",
    "admin\u{202E}gnp.exe\u{2066}x\u{2069}",
    "</svg></title><a href=\"javascript:alert(5)\">x</a>",
];

fn hostile_finding() -> Finding {
    let mut f = finding();
    f.snapshot = format!("snap-{}", HOSTILE[0]);
    f.resources = HOSTILE.iter().map(|h| format!("i-{h}")).collect();
    f.resources.push(f.snapshot.clone());
    f.resources.push(format!("sg-{}", HOSTILE[3]));
    f.actors = HOSTILE.iter().map(|h| (*h).to_owned()).collect();
    f.events = HOSTILE
        .iter()
        .enumerate()
        .map(|(n, h)| event(h, &format!("2026-03-02T09:0{n}:00Z"), h, h))
        .collect();
    f.account = HOSTILE[1].into();
    f.region = Some(HOSTILE[2].into());
    f.title = HOSTILE[0].into();
    f.summary = HOSTILE[6].into();
    f.next_steps = HOSTILE.iter().map(|h| (*h).to_owned()).collect();
    f.techniques = vec![HOSTILE[5].into()];
    f.id = HOSTILE[4].into();
    f
}

#[test]
fn escapes_markup_quotes_and_invisible_characters() {
    assert_eq!(
        html("<a href=\"x\" title='y'>&"),
        "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;"
    );
    assert_eq!(html("a\u{2028}b\u{202E}c"), "a\\u{2028}b\\u{202e}c");
}

#[test]
fn hostile_values_cannot_open_tags_or_hide_text() {
    let f = hostile_finding();
    let page = page(&[&f], at("2026-03-02T10:00:00Z"));
    // The page's own markup appears once; hostile input adds no element of its own.
    for (tag, count) in [
        ("<script", 1),
        ("</script", 1),
        ("<style", 1),
        ("</style", 1),
        ("<img", 0),
        ("<a href=\"javascript", 0),
        ("</svg></title>", 0),
    ] {
        assert_eq!(
            page.matches(tag).count(),
            count,
            "hostile input changed the count of {tag}"
        );
    }
    for needle in [
        "\"><img",
        "'onmouseover",
        "\u{2028}",
        "\u{2029}",
        "\u{202E}",
        "\u{2066}",
    ] {
        assert!(!page.contains(needle), "{needle:?} reached the page raw");
    }
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("evil\\u{2028}line\\u{2029}para"));
}

fn page_of_plain_values() -> String {
    page(&[&finding()], at("2026-03-02T10:00:00Z"))
}

#[test]
fn csp_pins_the_inline_style_and_script_and_allows_no_network() {
    let page = page_of_plain_values();
    assert!(page.contains("default-src 'none'"));
    assert!(page.contains(&csp_hash(SCRIPT)));
    assert!(page.contains(&csp_hash(STYLE)));
    for fetch in ["http://", "https://", "src=", "@import", "url("] {
        let outside_svg_namespace = page
            .replace("xmlns=\"http://www.w3.org/2000/svg\"", "")
            .replace("url(#arrow)", "");
        assert!(
            !outside_svg_namespace.contains(fetch),
            "page fetches {fetch}"
        );
    }
}

#[test]
fn base64_matches_known_vectors() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(b"foobar"), "Zm9vYmFy");
}

#[test]
fn one_finding_draws_the_chain_and_its_events_in_time_order() {
    let page = page_of_plain_values();
    assert!(page.contains("data-findings=\"1\""));
    assert_eq!(page.matches("<section class=\"finding").count(), 1);
    assert_eq!(page.matches("<svg class=\"chain\"").count(), 1);
    assert_eq!(page.matches("<svg class=\"timeline\"").count(), 1);
    // CreateSnapshot took a snapshot of vol-0d, which is therefore its source, left of it.
    let headings: Vec<&str> = [
        "source",
        "snapshots &amp; images",
        "instances",
        "network rules",
    ]
    .into_iter()
    .filter(|h| page.contains(&format!(">{h}</text>")))
    .collect();
    assert_eq!(headings.len(), 4, "{page}");
    assert!(!page.contains(">restored volumes &amp; disks</text>"));
    let create = page
        .find("<td class=\"mono\">CreateSnapshot")
        .expect("event row");
    let run = page
        .find("<td class=\"mono\">RunInstances")
        .expect("event row");
    assert!(create < run, "events are listed in time order");
    assert!(page.contains("31 min elapsed"));
}

#[test]
fn restores_sit_right_of_the_snapshot() {
    let mut f = finding();
    f.events.retain(|e| e.name != "CreateSnapshot");
    f.events
        .push(event("CreateVolume", "2026-03-02T09:20:00Z", "x", "y"));
    let restored = page(&[&f], at("2026-03-02T10:00:00Z"));
    assert!(restored.contains(">restored volumes &amp; disks</text>"));
    assert!(!restored.contains(">source</text>"));

    // A snapshot taken and a volume made: the logs do not say which disk is which.
    let mut f = finding();
    f.events
        .push(event("CreateVolume", "2026-03-02T09:20:00Z", "x", "y"));
    let page = page(&[&f], at("2026-03-02T10:00:00Z"));
    assert!(page.contains(">volumes &amp; disks</text>"));
    assert!(!page.contains(">source</text>"));
}

#[test]
fn axis_labels_keep_the_telling_end_of_long_operation_names() {
    assert_eq!(
        short_event_name("MICROSOFT.COMPUTE/SNAPSHOTS/WRITE"),
        "SNAPSHOTS/WRITE"
    );
    assert_eq!(
        short_event_name("v1.compute.disks.createSnapshot"),
        "disks.createSnapshot"
    );
    assert_eq!(short_event_name("RunInstances"), "RunInstances");
}

#[test]
fn hundreds_of_findings_get_a_summary_row_and_section_each() {
    let findings: Vec<Finding> = (0..300)
        .map(|n| {
            let mut f = finding();
            f.id = format!("sw-{n:04}");
            f.severity = [
                Severity::Low,
                Severity::Medium,
                Severity::High,
                Severity::Critical,
            ][n % 4];
            f
        })
        .collect();
    let refs: Vec<&Finding> = findings.iter().collect();
    let page = page(&refs, at("2026-03-02T10:00:00Z"));
    assert!(page.contains("data-findings=\"300\""));
    assert_eq!(page.matches("<tr class=\"sev-").count(), 300);
    assert_eq!(page.matches("<section class=\"finding").count(), 300);
    assert!(page.contains("href=\"#finding-300\""));
    assert!(page.contains("data-severity=\"4\""));
    assert!(page.contains("<span class=\"badge\">critical</span> 75</span>"));
}

#[test]
fn crowded_columns_and_long_chains_stay_bounded() {
    let mut f = finding();
    f.resources = (0..40).map(|n| format!("i-{n:03}")).collect();
    f.events = (0..100)
        .map(|n| {
            event(
                "RunInstances",
                &format!("2026-03-02T09:{:02}:00Z", n % 60),
                "a",
                "b",
            )
        })
        .collect();
    let page = page(&[&f], at("2026-03-02T10:00:00Z"));
    assert!(page.contains("+34 more"));
    assert_eq!(
        page.matches("<g class=\"node").count(),
        NODES_PER_COLUMN_MAX + 2
    );
    assert!(page.contains("first 60 of 100 events"));
    assert_eq!(page.matches("<tr><td>").count(), 100);
}

#[test]
fn no_findings_still_make_a_page() {
    let page = page(&[], at("2026-03-02T10:00:00Z"));
    assert!(page.contains("id=\"no-findings\""));
    assert!(page.contains("data-findings=\"0\""));
    assert!(page.ends_with("</html>\n"));
}

#[test]
fn the_same_findings_give_the_same_bytes() {
    let mut f = finding();
    let a = page(&[&f], at("2026-03-02T10:00:00Z"));
    f.resources.reverse();
    let b = page(&[&f], at("2026-03-02T10:00:00Z"));
    assert_eq!(a, b);
}

#[test]
fn resource_shapes_follow_each_clouds_ids() {
    let cases = [
        ("snap-0a", Shape::Snapshot),
        ("ami-0a", Shape::Image),
        ("vol-0a", Shape::Disk),
        ("i-0a", Shape::Instance),
        ("sg-0a", Shape::Network),
        ("arn:aws:rds:us-east-1:1:snapshot:x", Shape::Snapshot),
        (
            "arn:aws:rds:us-east-1:1:cluster-snapshot:x",
            Shape::Snapshot,
        ),
        ("arn:aws:rds:us-east-1:1:db:x", Shape::Database),
        (
            "/subscriptions/s/resourcegroups/r/providers/microsoft.compute/snapshots/x",
            Shape::Snapshot,
        ),
        (
            "/subscriptions/s/resourcegroups/r/providers/microsoft.compute/disks/x",
            Shape::Disk,
        ),
        (
            "/subscriptions/s/resourcegroups/r/providers/microsoft.compute/virtualmachines/x",
            Shape::Instance,
        ),
        (
            "/subscriptions/s/resourcegroups/r/providers/microsoft.network/networksecuritygroups/x",
            Shape::Network,
        ),
        ("projects/p/global/snapshots/x", Shape::Snapshot),
        ("projects/p/global/images/x", Shape::Image),
        ("projects/p/zones/z/disks/x", Shape::Disk),
        ("projects/p/zones/z/instances/x", Shape::Instance),
        ("projects/p/global/networks/x", Shape::Network),
    ];
    for (id, shape) in cases {
        assert_eq!(Shape::of(id), shape, "{id}");
    }
}
