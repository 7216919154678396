use super::*;
use crate::model::Cloud;
use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};

const HOSTILE: &str =
    "<!channel> @here @Everyone <https://evil.example|click> <@U123> & co\nline2\x1b[31mred`*b*`";

fn at(time: &str) -> DateTime<Utc> {
    time.parse().expect("test timestamp")
}

fn event(id: &str, name: &str, time: &str, actor: Option<&str>, ip: Option<&str>) -> ChainEvent {
    ChainEvent {
        id: id.to_owned(),
        name: name.to_owned(),
        time: at(time),
        actor: actor.map(str::to_owned),
        source_ip: ip.map(str::to_owned),
    }
}

fn finding() -> Finding {
    let alice = "arn:aws:iam::111122223333:user/alice";
    let bob = "arn:aws:sts::111122223333:assumed-role/ops/bob";
    Finding {
        id: "f-5e1c0a".to_owned(),
        rule: crate::model::Rule::ChainExposedRestore,
        severity: Severity::Critical,
        cloud: Cloud::Aws,
        account: "111122223333".to_owned(),
        region: Some("us-east-1".to_owned()),
        snapshot: "snap-0123456789abcdef0".to_owned(),
        resources: vec![
            "snap-0123456789abcdef0".to_owned(),
            "vol-0aaaaaaaaaaaaaaaa".to_owned(),
            "i-0bbbbbbbbbbbbbbbb".to_owned(),
            "sg-0cccccccccccccccc".to_owned(),
        ],
        actors: vec![alice.to_owned(), bob.to_owned()],
        techniques: vec!["T1578.001".to_owned(), "T1578.002".to_owned()],
        events: vec![
            event("e1", "CreateSnapshot", "2024-05-01T10:00:00Z", Some(alice), Some("203.0.113.7")),
            event("e2", "CreateVolume", "2024-05-01T10:05:00Z", Some(bob), Some("198.51.100.4")),
            event("e3", "RunInstances", "2024-05-01T10:07:30.250Z", Some(bob), None),
            event("e4", "AuthorizeSecurityGroupIngress", "2024-05-01T10:09:00Z", None, Some("198.51.100.4")),
        ],
        first_seen: at("2024-05-01T10:00:00Z"),
        last_seen: at("2024-05-01T10:09:00Z"),
        title: "Instance i-0bbbbbbbbbbbbbbbb runs on a restored snapshot and is open to the internet".to_owned(),
        summary: "snap-0123456789abcdef0 was restored to vol-0aaaaaaaaaaaaaaaa, attached to i-0bbbbbbbbbbbbbbbb; sg-0cccccccccccccccc allows 0.0.0.0/0 on port 22.".to_owned(),
        next_steps: vec![
            "Isolate i-0bbbbbbbbbbbbbbbb.".to_owned(),
            "Revoke the ingress rule on sg-0cccccccccccccccc.".to_owned(),
        ],
        found_by: FoundBy::Events,
        response: None,
    }
}

/// A finding whose every attacker-reachable string carries injection attempts.
fn hostile_finding() -> Finding {
    let mut f = finding();
    f.snapshot = format!("snap-{HOSTILE}");
    f.account = format!("1111{HOSTILE}");
    f.region = Some(HOSTILE.to_owned());
    f.resources.push(HOSTILE.to_owned());
    f.actors.push(HOSTILE.to_owned());
    f.techniques.push(HOSTILE.to_owned());
    f.id = HOSTILE.to_owned();
    f.title = HOSTILE.to_owned();
    f.summary = HOSTILE.to_owned();
    f.next_steps.push(HOSTILE.to_owned());
    for e in &mut f.events {
        e.name = HOSTILE.to_owned();
        e.actor = Some(HOSTILE.to_owned());
        e.source_ip = Some(HOSTILE.to_owned());
    }
    f
}

/// Top-level keys of a JSON object in document order (serde_json's `Value` sorts them).
fn key_order(json: &str) -> Vec<String> {
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let mut keys = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                keys.push(key);
            }
            Ok(keys)
        }
    }
    serde_json::Deserializer::from_str(json)
        .deserialize_map(Keys)
        .expect("a JSON object")
}

#[test]
fn finding_json_has_design_fields_in_order() {
    let f = finding();
    let line = finding_json(&f);
    assert!(!line.contains('\n'));
    assert_eq!(
        key_order(&line),
        [
            "id",
            "rule",
            "severity",
            "cloud",
            "account",
            "region",
            "snapshot",
            "resources",
            "actors",
            "techniques",
            "events",
            "first_seen",
            "last_seen",
            "title",
            "summary",
            "next_steps",
            "found_by"
        ]
    );
    let value: Value = serde_json::from_str(&line).expect("valid JSON");
    let first_event = serde_json::to_string(&value["events"][0]).expect("event JSON");
    // Re-serialising a Value sorts keys, so check the order on the original text instead.
    let events_start = line.find("\"events\":[").expect("events array") + "\"events\":[".len();
    let event_keys = key_order(&line[events_start..]);
    assert_eq!(event_keys, ["id", "name", "time", "actor", "source_ip"]);
    assert!(first_event.contains("\"id\":\"e1\""));

    assert_eq!(value["severity"], "critical");
    assert_eq!(value["cloud"], "aws");
    assert_eq!(value["first_seen"], "2024-05-01T10:00:00Z");
    assert_eq!(value["last_seen"], "2024-05-01T10:09:00Z");
    assert_eq!(value["events"][2]["time"], "2024-05-01T10:07:30.250Z");
    assert_eq!(value["events"][2]["source_ip"], Value::Null);
    assert_eq!(value["events"][3]["actor"], Value::Null);
    assert_eq!(value["techniques"], json!(["T1578.001", "T1578.002"]));
    for time in ["first_seen", "last_seen"] {
        let text = value[time].as_str().expect("time string");
        DateTime::parse_from_rfc3339(text).expect("RFC 3339");
    }
    let back: Finding = serde_json::from_str(&line).expect("round trip");
    assert_eq!(back, f);
}

#[test]
fn finding_json_stays_one_line_and_keeps_missing_region_as_null() {
    let mut f = hostile_finding();
    f.region = None;
    let line = finding_json(&f);
    assert_eq!(line.lines().count(), 1);
    assert!(!line.contains('\x1b'));
    let value: Value = serde_json::from_str(&line).expect("valid JSON");
    assert_eq!(value["region"], Value::Null);
    assert_eq!(value["title"], HOSTILE);
}

#[test]
fn sns_message_is_the_finding_json() {
    let f = hostile_finding();
    assert_eq!(sns_message(&f), finding_json(&f));
}

#[test]
fn sns_attributes_carry_rule_severity_cloud_and_found_by() {
    let mut f = finding();
    f.rule = crate::model::Rule::SnapshotPublic;
    f.severity = Severity::High;
    f.cloud = Cloud::Gcp;
    assert_eq!(
        sns_attributes(&f),
        vec![
            ("rule", "snapshot.public".to_owned()),
            ("severity", "high".to_owned()),
            ("cloud", "gcp".to_owned()),
            ("found_by", "events".to_owned()),
        ]
    );
}

fn assert_valid_sns_subject(subject: &str) {
    assert!(subject.chars().count() <= 99, "too long: {subject:?}");
    assert!(subject.is_ascii(), "not ASCII: {subject:?}");
    assert!(
        !subject.chars().any(|c| c.is_ascii_control()),
        "control: {subject:?}"
    );
    let first = subject.chars().next().expect("non-empty subject");
    assert!(first.is_ascii_alphanumeric() || first.is_ascii_punctuation());
}

#[test]
fn sns_subject_names_severity_rule_cloud_account_and_snapshot() {
    let subject = sns_subject(&finding());
    assert_eq!(
        subject,
        "[CRITICAL] snapwatch chain.exposed-restore aws 111122223333 snap-0123456789abcdef0"
    );
    assert_valid_sns_subject(&subject);
}

#[test]
fn sns_subject_uses_the_name_at_the_end_of_path_and_arn_ids() {
    let mut f = finding();
    f.cloud = Cloud::Azure;
    f.account = "00000000-1111-2222-3333-444444444444".to_owned();
    f.snapshot = "/subscriptions/00000000-1111-2222-3333-444444444444/resourcegroups/rg/providers/microsoft.compute/snapshots/db-backup".to_owned();
    assert!(sns_subject(&f).ends_with(" azure 00000000-1111-2222-3333-444444444444 db-backup"));
    f.snapshot = "arn:aws:rds:us-east-1:111122223333:snapshot:prod-db-final".to_owned();
    assert!(sns_subject(&f).ends_with(" prod-db-final"));
}

#[test]
fn sns_subject_is_ascii_one_line_and_bounded_whatever_the_input() {
    let mut f = finding();
    f.snapshot = "snap-ünïcødé\n\r\tnext\u{2028}line 🚨".to_owned();
    let subject = sns_subject(&f);
    assert_valid_sns_subject(&subject);
    assert!(subject.contains("snap-?n?c?d? next line ?"), "{subject}");

    f.snapshot = "ü".repeat(10_000);
    let subject = sns_subject(&f);
    assert_valid_sns_subject(&subject);

    let subject = sns_subject(&hostile_finding());
    assert_valid_sns_subject(&subject);
    assert!(
        subject.starts_with("[CRITICAL] snapwatch chain.exposed-restore aws 1111<!channel> @here")
    );
    assert!(subject.ends_with("..."));
    assert_eq!(subject.len(), 99);
}

#[test]
fn text_has_headline_and_chain_in_time_order() {
    let mut f = finding();
    f.events.reverse(); // the renderer orders by time, not by input order
    let out = text(&f);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "[CRITICAL] chain.exposed-restore — aws account 111122223333, us-east-1, snapshot snap-0123456789abcdef0"
    );
    assert_eq!(lines[1], f.title);
    assert_eq!(lines[2], f.summary);
    let chain: Vec<&str> = lines
        .iter()
        .skip_while(|l| !l.starts_with("Chain ("))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .copied()
        .collect();
    assert_eq!(
        chain,
        [
            "  1. 2024-05-01T10:00:00Z  CreateSnapshot  actor arn:aws:iam::111122223333:user/alice  from 203.0.113.7",
            "  2. 2024-05-01T10:05:00Z  CreateVolume  actor arn:aws:sts::111122223333:assumed-role/ops/bob  from 198.51.100.4",
            "  3. 2024-05-01T10:07:30.250Z  RunInstances  actor arn:aws:sts::111122223333:assumed-role/ops/bob  from unknown",
            "  4. 2024-05-01T10:09:00Z  AuthorizeSecurityGroupIngress  actor unknown  from 198.51.100.4",
        ]
    );
    for resource in &f.resources {
        assert!(out.contains(&format!("\n  - {resource}\n")));
    }
    for actor in &f.actors {
        assert!(out.contains(&format!("\n  - {actor}\n")));
    }
    assert!(out.contains("\nATT&CK techniques: T1578.001, T1578.002\n"));
    assert!(out.ends_with(
        "Next steps:\n  1. Isolate i-0bbbbbbbbbbbbbbbb.\n  2. Revoke the ingress rule on sg-0cccccccccccccccc."
    ));
}

#[test]
fn text_escapes_control_characters_so_values_cannot_forge_lines_or_escapes() {
    let clean = text(&finding());
    let mut f = finding();
    f.actors[0] = "mallory\n[CRITICAL] forged line\x1b[31m".to_owned();
    f.events[0].actor = Some("mallory\r\n  9. forged event\u{9b}2J".to_owned());
    f.title = "title\u{202E}desrever".to_owned();
    let out = text(&f);
    assert_eq!(out.lines().count(), clean.lines().count());
    assert!(!out.chars().any(|c| c.is_control() && c != '\n'));
    assert!(out.contains("  - mallory\\u{a}[CRITICAL] forged line\\u{1b}[31m\n"));
    assert!(out.contains("actor mallory\\u{d}\\u{a}  9. forged event\\u{9b}2J  from"));
    assert!(out.contains("\ntitle\\u{202e}desrever\n"));
    assert!(!out.lines().any(|l| l.starts_with("[CRITICAL] forged")));
}

#[test]
fn text_says_none_for_empty_lists_and_unknown_region() {
    let mut f = finding();
    f.region = None;
    f.events.clear();
    f.resources.clear();
    f.actors.clear();
    f.techniques.clear();
    f.next_steps.clear();
    let out = text(&f);
    assert!(out.starts_with(
        "[CRITICAL] chain.exposed-restore — aws account 111122223333, unknown region,"
    ));
    assert!(out.contains("\nChain (0 events):\n\nResources (0):\nActors (0):\nATT&CK techniques: none\nNext steps: none"));
}

/// Every string anywhere in a JSON value.
fn strings(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        Value::Object(map) => map.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

fn text_of(object: &Value) -> &str {
    object["text"].as_str().expect("text object with a string")
}

/// Block Kit structure and limits the renderer promises, checked on the JSON itself.
fn assert_block_kit_valid(message: &Value) {
    let fallback = message["text"].as_str().expect("fallback text");
    assert!(!fallback.trim().is_empty() && slack_len(fallback) <= 3000);
    let blocks = message["blocks"].as_array().expect("blocks");
    assert!(
        !blocks.is_empty() && blocks.len() <= 50,
        "{} blocks",
        blocks.len()
    );
    for block in blocks {
        // Slack counts UTF-16 code units, not Rust chars.
        let chars = |object: &Value| slack_len(text_of(object));
        match block["type"].as_str().expect("block type") {
            "header" => {
                assert_eq!(block["text"]["type"], "plain_text");
                assert!(
                    (1..=150).contains(&chars(&block["text"])),
                    "header {}",
                    chars(&block["text"])
                );
            }
            "section" => {
                let has_text = block.get("text").is_some();
                if has_text {
                    assert!(
                        (1..=3000).contains(&chars(&block["text"])),
                        "section {}",
                        chars(&block["text"])
                    );
                }
                let fields = block.get("fields").and_then(Value::as_array);
                assert!(has_text || fields.is_some());
                if let Some(fields) = fields {
                    assert!(fields.len() <= 10);
                    for field in fields {
                        assert!((1..=2000).contains(&chars(field)), "field {}", chars(field));
                    }
                }
            }
            "context" => {
                let elements = block["elements"].as_array().expect("context elements");
                assert!(!elements.is_empty() && elements.len() <= 10);
                for element in elements {
                    assert!((1..=3000).contains(&chars(element)));
                }
            }
            "divider" => {}
            other => panic!("unexpected block type {other}"),
        }
    }
    let total = text_len(&message["blocks"]);
    assert!(total <= MESSAGE_TEXT_MAX, "blocks hold {total} characters");
}

/// Every `&` in Slack text starts one of the three escapes: none was cut in half.
fn assert_entities_whole(s: &str) {
    for (i, _) in s.match_indices('&') {
        let rest = &s[i..];
        assert!(
            rest.starts_with("&amp;") || rest.starts_with("&lt;") || rest.starts_with("&gt;"),
            "broken entity in {s:?}"
        );
    }
}

fn mrkdwn_texts(message: &Value) -> Vec<&str> {
    let mut objects = Vec::new();
    for block in message["blocks"].as_array().expect("blocks") {
        objects.push(&block["text"]);
        objects.extend(block["fields"].as_array().into_iter().flatten());
        objects.extend(block["elements"].as_array().into_iter().flatten());
    }
    objects
        .into_iter()
        .filter(|object| object["type"] == "mrkdwn")
        .map(text_of)
        .collect()
}

#[test]
fn slack_message_has_header_fields_chain_and_context() {
    let f = finding();
    let message = slack_message(&f);
    assert_block_kit_valid(&message);
    assert_eq!(
        message["text"],
        format!("[CRITICAL] snapwatch: {}", f.title)
    );
    let blocks = message["blocks"].as_array().expect("blocks");
    assert_eq!(
        text_of(&blocks[0]["text"]),
        format!(":rotating_light: CRITICAL: {}", f.title)
    );
    assert_eq!(text_of(&blocks[1]["text"]), f.summary);
    let fields: Vec<&str> = blocks[1]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(text_of)
        .collect();
    assert_eq!(
        fields,
        [
            "*Rule*\n`chain.exposed-restore`",
            "*Severity*\n`critical`",
            "*Cloud*\n`aws`",
            "*Account*\n`111122223333`",
            "*Region*\n`us-east-1`",
            "*Snapshot*\n`snap-0123456789abcdef0`",
            "*First seen*\n`2024-05-01T10:00:00Z`",
            "*Last seen*\n`2024-05-01T10:09:00Z`",
            "*Found by*\n`events`",
        ]
    );
    let all = strings(&message).join("\n");
    assert!(all.contains(
        "*Chain* (4 events, in time order)\n\
         • `2024-05-01T10:00:00Z` `CreateSnapshot` by `arn:aws:iam::111122223333:user/alice` from `203.0.113.7`\n\
         • `2024-05-01T10:05:00Z` `CreateVolume` by `arn:aws:sts::111122223333:assumed-role/ops/bob` from `198.51.100.4`\n\
         • `2024-05-01T10:07:30.250Z` `RunInstances` by `arn:aws:sts::111122223333:assumed-role/ops/bob` from (unknown)\n\
         • `2024-05-01T10:09:00Z` `AuthorizeSecurityGroupIngress` by (unknown) from `198.51.100.4`"
    ));
    assert!(all.contains("*Actors* (2)\n• `arn:aws:iam::111122223333:user/alice`\n• `arn:aws:sts::111122223333:assumed-role/ops/bob`"));
    assert!(all.contains("*Resources* (4)\n• `snap-0123456789abcdef0`\n"));
    assert!(all.contains(
        "*ATT&amp;CK techniques*\n• <https://attack.mitre.org/techniques/T1578/001/|T1578.001>\n• <https://attack.mitre.org/techniques/T1578/002/|T1578.002>"
    ));
    assert!(all.contains("Next steps\n1. Isolate i-0bbbbbbbbbbbbbbbb.\n2. Revoke the ingress rule on sg-0cccccccccccccccc."));
    let context = blocks.last().expect("context block");
    assert_eq!(context["type"], "context");
    assert_eq!(
        text_of(&context["elements"][0]),
        "snapwatch finding `f-5e1c0a`"
    );
}

#[test]
fn slack_message_neutralises_injection_in_every_string() {
    let message = slack_message(&hostile_finding());
    assert_block_kit_valid(&message);
    for s in strings(&message) {
        assert!(
            !s.chars().any(|c| c.is_control() && c != '\n'),
            "control char in {s:?}"
        );
        assert_entities_whole(s);
        let lower = s.to_lowercase();
        for mention in ["@here", "@channel", "@everyone"] {
            assert!(!lower.contains(mention), "live mention in {s:?}");
        }
        // The only angle brackets left are our own ATT&CK links.
        for (i, _) in s.match_indices('<') {
            assert!(
                s[i..].starts_with("<https://attack.mitre.org/techniques/T"),
                "{s:?}"
            );
        }
        assert_eq!(s.matches('>').count(), s.matches('<').count(), "{s:?}");
    }
    let all = strings(&message).join("\n");
    // ESC is shown, not dropped: what the value really holds stays visible.
    assert!(all.contains("&lt;!channel&gt; @\u{2060}here @\u{2060}Everyone &lt;https://evil.example|click&gt; &lt;@U123&gt; &amp; co line2\\u{1b}[31mred"));
    // Inside code spans the backticks were replaced, so spans stay balanced per line.
    for text in mrkdwn_texts(&message) {
        for line in text.lines() {
            assert_eq!(
                line.matches('`').count() % 2,
                0,
                "unbalanced code span: {line:?}"
            );
        }
    }
    assert!(all.contains("`snap-&lt;!channel&gt;"));
    assert!(all.contains("red\u{02CB}*b*\u{02CB}`"));
}

#[test]
fn slack_mention_defusing_sees_through_control_characters() {
    let mut f = finding();
    f.title = "@\u{1}here and @\u{202E}channel and @here".to_owned();
    let message = slack_message(&f);
    assert_eq!(
        message["text"],
        "[CRITICAL] snapwatch: @\\u{1}here and @\\u{202e}channel and @\u{2060}here"
    );
}

/// Look-alikes: each character that is invisible, breaks a line or reorders text.
const INVISIBLE: [(char, &str); 12] = [
    ('\u{200B}', "\\u{200b}"),
    ('\u{FEFF}', "\\u{feff}"),
    ('\u{00AD}', "\\u{ad}"),
    ('\u{2060}', "\\u{2060}"),
    ('\u{E0041}', "\\u{e0041}"),
    ('\u{E007F}', "\\u{e007f}"),
    ('\u{3164}', "\\u{3164}"),
    ('\u{202E}', "\\u{202e}"),
    ('\u{2028}', "\\u{2028}"),
    ('\u{85}', "\\u{85}"),
    ('\u{9b}', "\\u{9b}"),
    ('\u{7f}', "\\u{7f}"),
];

#[test]
fn escape_line_shows_every_invisible_or_line_breaking_character() {
    for (c, shown) in INVISIBLE {
        assert_eq!(escape_line(&format!("ad{c}min")), format!("ad{shown}min"));
    }
    assert_eq!(escape_line("snap-0abc/ü✓ 名前"), "snap-0abc/ü✓ 名前");
}

#[test]
fn text_and_slack_show_invisible_characters_in_principals() {
    for (c, shown) in INVISIBLE {
        let mut f = finding();
        f.actors[0] = format!("admin{c}@example.com");
        let out = text(&f);
        assert!(
            out.contains(&format!("  - admin{shown}@example.com\n")),
            "{c:?}: {out}"
        );
        let all = strings(&slack_message(&f)).join("\n");
        assert!(
            all.contains(&format!("`admin{shown}@example.com`")),
            "{c:?}: {all}"
        );
    }
}

#[test]
fn finding_json_escapes_unicode_line_breaks_c1_bidi_and_invisible_characters() {
    let mut f = finding();
    let hostile: String = INVISIBLE.iter().map(|(c, _)| *c).collect();
    f.actors[0] = format!("x{hostile}y");
    let json = finding_json(&f);
    assert!(!json.chars().any(is_display_hazard), "{json:?}");
    assert!(json.contains(
        "x\\u200b\\ufeff\\u00ad\\u2060\\udb40\\udc41\\udb40\\udc7f\\u3164\\u202e\\u2028\\u0085\\u009b\\u007fy"
    ));
    let back: Finding = serde_json::from_str(&json).expect("still the same JSON value");
    assert_eq!(back, f);
    assert_eq!(
        json.split(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'])
            .count(),
        1
    );
}

#[test]
fn slack_counts_as_slack_does_and_caps_the_whole_message() {
    // Outside the BMP: one Rust char, two UTF-16 units, as Slack counts.
    let wide = |n: usize| "\u{1D41A}".repeat(n);
    let mut f = finding();
    f.title = wide(200);
    f.summary = wide(5000);
    f.snapshot = wide(5000);
    f.account = wide(5000);
    f.region = Some(wide(5000));
    f.id = wide(5000);
    f.resources = vec![wide(400); 20];
    f.actors = vec![wide(400); 20];
    f.next_steps = vec![wide(1000); 5];
    for e in &mut f.events {
        e.name = wide(500);
        e.actor = Some(wide(500));
    }
    let message = slack_message(&f);
    assert_block_kit_valid(&message);
    // Still useful: the account, region and snapshot fields show part of their value.
    let fields = message["blocks"][1]["fields"].as_array().expect("fields");
    for field in &fields[3..=5] {
        assert!(text_of(field).contains('\u{1D41A}'), "{field}");
    }
    assert_eq!(slack_len("\u{1D41A}"), 2);
    assert_eq!(
        slack_escape(&wide(3), 5, SlackSpan::Text),
        "\u{1D41A}\u{1D41A}…"
    );
}

#[test]
fn slack_message_of_padded_ascii_stays_under_the_total_cap() {
    let pad = |n: usize| "x".repeat(n);
    let mut f = finding();
    f.summary = pad(3000);
    f.snapshot = pad(2000);
    f.account = pad(2000);
    f.region = Some(pad(2000));
    f.resources = vec![pad(290); 10];
    f.actors = vec![pad(290); 10];
    f.next_steps = vec![pad(590); 5];
    let message = slack_message(&f);
    assert_block_kit_valid(&message);
    // An ordinary finding keeps its full budgets.
    assert_eq!(
        slack_message_scaled(&finding(), 1000),
        slack_message(&finding())
    );
}

#[test]
fn slack_technique_links_only_for_well_formed_ids() {
    assert_eq!(
        technique_link("T1537", LIST_VALUE_MAX),
        "<https://attack.mitre.org/techniques/T1537/|T1537>"
    );
    assert_eq!(technique_link("T1578.1x1", LIST_VALUE_MAX), "`T1578.1x1`");
    assert_eq!(
        technique_link("T1578.001.002", LIST_VALUE_MAX),
        "`T1578.001.002`"
    );
    assert_eq!(
        technique_link("T1578|<x>", LIST_VALUE_MAX),
        "`T1578|&lt;x&gt;`"
    );
}

#[test]
fn slack_message_with_500_events_shows_first_and_last_within_limits() {
    let mut f = finding();
    let start = f.first_seen;
    f.events = (0..500)
        .map(|n| ChainEvent {
            id: format!("e{n}"),
            name: format!("Event{n:03}"),
            time: start + chrono::Duration::seconds(i64::from(n)),
            actor: Some(format!("arn:aws:iam::111122223333:user/user{n}")),
            source_ip: Some("203.0.113.7".to_owned()),
        })
        .collect();
    f.resources = (0..500).map(|n| format!("vol-{n:017}")).collect();
    f.actors = (0..500).map(|n| format!("user{n}@example.com")).collect();
    let message = slack_message(&f);
    assert_block_kit_valid(&message);

    let chain = mrkdwn_texts(&message)
        .into_iter()
        .find(|t| t.starts_with("*Chain*"))
        .expect("chain section");
    assert!(chain.starts_with("*Chain* (500 events, in time order)\n"));
    let shown: Vec<&str> = chain.lines().filter(|l| l.starts_with("• ")).collect();
    assert!(shown.len() >= 2 && shown.len() <= LIST_LINES_MAX);
    assert!(shown[0].contains("`Event000`"));
    assert!(shown[shown.len() - 1].contains("`Event499`"));
    assert!(chain.contains(&format!("\n… ({} more events)\n", 500 - shown.len())));
    // Shown events are a prefix and a suffix of the chain, in order.
    let numbers: Vec<usize> = shown
        .iter()
        .filter_map(|l| l.split("`Event").nth(1))
        .filter_map(|rest| rest.get(..3))
        .filter_map(|digits| digits.parse().ok())
        .collect();
    assert_eq!(numbers.len(), shown.len());
    assert!(numbers.windows(2).all(|w| w[0] < w[1]));

    let resources = mrkdwn_texts(&message)
        .into_iter()
        .find(|t| t.starts_with("*Resources*"))
        .expect("resources section");
    let shown_resources = resources.lines().filter(|l| l.starts_with("• ")).count();
    assert!(resources.contains(&format!("({} more resources)", 500 - shown_resources)));
}

#[test]
fn slack_message_with_10kb_strings_stays_within_limits() {
    let big = |unit: &str| unit.repeat(10 * 1024 / unit.len());
    let mut f = hostile_finding();
    f.title = big("&<>@here`\n");
    f.summary = big("<!channel>&");
    f.snapshot = big("&");
    f.account = big("<");
    f.region = Some(big("ü"));
    f.id = big(">");
    f.resources = vec![big("r&"); 20];
    f.actors = vec![big("a<"); 20];
    f.techniques.push(big("T"));
    f.next_steps = vec![big("step & "); 20];
    for e in &mut f.events {
        e.name = big("n&");
        e.actor = Some(big("@everyone "));
        e.source_ip = Some(big(":"));
    }
    let message = slack_message(&f);
    assert_block_kit_valid(&message);
    for s in strings(&message) {
        assert_entities_whole(s);
    }
    for text in mrkdwn_texts(&message) {
        for line in text.lines() {
            assert_eq!(
                line.matches('`').count() % 2,
                0,
                "unbalanced code span: {line:?}"
            );
        }
    }
    let header = text_of(&message["blocks"][0]["text"]);
    assert!(header.ends_with('…'));
    assert!(header.starts_with(":rotating_light: CRITICAL: &amp;&lt;&gt;@\u{2060}here"));
}

#[test]
fn slack_escape_cuts_between_escapes_and_marks_the_cut() {
    assert_eq!(slack_escape("a&b", 3, SlackSpan::Text), "a…");
    assert_eq!(slack_escape("a&b", 6, SlackSpan::Text), "a…");
    assert_eq!(slack_escape("a&bc", 7, SlackSpan::Text), "a&amp;…");
    assert_eq!(slack_escape("a&b", 7, SlackSpan::Text), "a&amp;b");
    assert_eq!(slack_escape("abc", 0, SlackSpan::Text), "");
    assert_eq!(slack_code("", 10), "(none)");
    assert_eq!(slack_code("x`y", 10), "`x\u{02CB}y`");
}
