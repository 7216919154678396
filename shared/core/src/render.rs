//! Alert rendering: a [`Finding`] as JSON, as plain text for people, as a Slack Block Kit
//! message and as the fields of an SNS publish.
//!
//! Pure functions, no I/O. Every string inside a finding can be attacker-controlled (actor
//! names, resource ids, tags end up in ids, titles and summaries), so each form neutralises
//! what its reader would interpret: control characters in text (terminal escapes, forged
//! lines), mentions / links / formatting in Slack, non-ASCII and line breaks in the SNS subject.

use crate::model::{ChainEvent, Finding, FoundBy, ResponseReport, Severity};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::fmt::Write as _;

pub mod asff;
pub mod ocsf;

/// The finding JSON of the README's "Finding JSON" section, one line (this is the SNS message body and the CLI's jsonl).
///
/// Display hazards serde_json leaves raw (DEL, C1 controls such as NEL, U+2028 / U+2029, bidi
/// and invisible format characters) are written as `\uXXXX` escapes: the same JSON value, but
/// tools that split on Unicode line breaks still see one object per line, and nothing in the
/// line reorders or hides text when it is shown.
pub fn finding_json(f: &Finding) -> String {
    // Every field is a string, list, enum or timestamp, so serialisation cannot fail; the
    // fallback only keeps this function infallible without a panic path.
    let json = serde_json::to_string(f).unwrap_or_else(|err| {
        json!({ "id": f.id, "rule": f.rule, "render_error": err.to_string() }).to_string()
    });
    json_escape_hazards(json)
}

/// serde_json escapes C0 controls itself, and outside strings its output is ASCII, so every
/// hazard left is inside a string literal, where a `\uXXXX` escape means the same character.
pub(crate) fn json_escape_hazards(json: String) -> String {
    if !json.chars().any(is_display_hazard) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 32);
    for c in json.chars() {
        if is_display_hazard(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// SNS message body: exactly [`finding_json`], so subscribers parse one contract.
pub fn sns_message(f: &Finding) -> String {
    finding_json(f)
}

/// Message attributes subscribers filter on: `[("rule", …), ("severity", …), ("cloud", …)]`.
pub fn sns_attributes(f: &Finding) -> Vec<(&'static str, String)> {
    vec![
        ("rule", f.rule.id().to_owned()),
        ("severity", f.severity.as_str().to_owned()),
        ("cloud", f.cloud.as_str().to_owned()),
        ("found_by", f.found_by.as_str().to_owned()),
    ]
}

/// SNS rejects subjects of 100 characters or more.
const SNS_SUBJECT_MAX: usize = 99;

/// SNS Subject: at most 99 characters, ASCII only, one line, starting with `[` (SNS requires a
/// letter, number or punctuation mark first), e.g.
/// `[CRITICAL] snapwatch chain.exposed-restore aws 111122223333 snap-0123456789abcdef0`.
pub fn sns_subject(f: &Finding) -> String {
    let raw = format!(
        "[{}] snapwatch {} {} {} {}",
        severity_upper(f.severity),
        f.rule,
        f.cloud,
        f.account,
        short_resource_name(&f.snapshot)
    );
    let mut subject = String::with_capacity(SNS_SUBJECT_MAX + 1);
    for c in raw.chars() {
        let c = if c.is_ascii_graphic() {
            c
        } else if c.is_whitespace() || c.is_control() {
            ' '
        } else {
            '?'
        };
        // Collapsing runs keeps a value full of line breaks from eating the length budget.
        if c == ' ' && subject.ends_with(' ') {
            continue;
        }
        subject.push(c);
    }
    let mut subject = subject.trim_end().to_owned();
    if subject.len() > SNS_SUBJECT_MAX {
        // ASCII only by construction, so every byte index is a character boundary.
        subject.truncate(SNS_SUBJECT_MAX - 3);
        let kept = subject.trim_end().len();
        subject.truncate(kept);
        subject.push_str("...");
    }
    subject
}

/// A multi-line plain-text form for people (CLI `--format text`): headline, title, summary,
/// the chain in time order, resources, actors, ATT&CK techniques and next steps.
///
/// Every value goes through [`escape_line`], so a value can neither start a new line, send a
/// terminal escape sequence, reorder the text nor hide characters. No trailing newline.
pub fn text(f: &Finding) -> String {
    let e = escape_line;
    let mut out = String::new();
    let region = f
        .region
        .as_deref()
        .map_or_else(|| "unknown region".to_owned(), e);
    let _ = writeln!(
        out,
        "[{}] {} — {} account {}, {}, snapshot {}",
        severity_upper(f.severity),
        e(f.rule.id()),
        f.cloud,
        e(&f.account),
        region,
        e(&f.snapshot)
    );
    let _ = writeln!(out, "{}", e(&f.title));
    let _ = writeln!(out, "{}", e(&f.summary));
    let _ = writeln!(
        out,
        "Finding {} · first seen {} · last seen {} · found by {}",
        e(&f.id),
        rfc3339(&f.first_seen),
        rfc3339(&f.last_seen),
        found_by_label(f.found_by)
    );
    if let Some(report) = &f.response {
        let _ = writeln!(out, "{}:", response_heading(report));
        for line in response_lines(report) {
            let _ = writeln!(out, "  - {}", e(&line));
        }
    }

    let events = events_in_time_order(f);
    let _ = writeln!(out, "\nChain ({} events):", events.len());
    let number_width = events.len().to_string().len();
    for (n, event) in events.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {:>width$}. {}  {}  actor {}  from {}",
            n + 1,
            rfc3339(&event.time),
            e(&event.name),
            event.actor.as_deref().map_or_else(|| "unknown".into(), e),
            event
                .source_ip
                .as_deref()
                .map_or_else(|| "unknown".into(), e),
            width = number_width
        );
    }

    let _ = writeln!(out, "\nResources ({}):", f.resources.len());
    for resource in &f.resources {
        let _ = writeln!(out, "  - {}", e(resource));
    }
    let _ = writeln!(out, "Actors ({}):", f.actors.len());
    for actor in &f.actors {
        let _ = writeln!(out, "  - {}", e(actor));
    }
    let techniques: Vec<String> = f.techniques.iter().map(|t| e(t)).collect();
    let _ = writeln!(
        out,
        "ATT&CK techniques: {}",
        if techniques.is_empty() {
            "none".to_owned()
        } else {
            techniques.join(", ")
        }
    );
    let _ = write!(out, "Next steps:");
    if f.next_steps.is_empty() {
        let _ = write!(out, " none");
    }
    for (n, step) in f.next_steps.iter().enumerate() {
        let _ = write!(out, "\n  {}. {}", n + 1, e(step));
    }
    out
}

// Block Kit limits, in characters as Slack counts them ([`slack_len`]).
const HEADER_TEXT_MAX: usize = 150;
const SECTION_TEXT_MAX: usize = 3000;
const SECTION_FIELDS_MAX: usize = 10;
const FIELD_TEXT_MAX: usize = 2000;
const CONTEXT_TEXT_MAX: usize = 3000;
const BLOCKS_MAX: usize = 50;
/// Slack truncates longer notification fallbacks anyway.
const FALLBACK_TEXT_MAX: usize = 3000;
/// Longest list a message shows before it elides the middle: keeps the message readable.
const LIST_LINES_MAX: usize = 10;
// Per-value budgets inside list lines, so that several lines always fit one section.
const EVENT_NAME_MAX: usize = 100;
const EVENT_ACTOR_MAX: usize = 200;
const EVENT_IP_MAX: usize = 64;
const LIST_VALUE_MAX: usize = 300;
const NEXT_STEP_MAX: usize = 600;
const FINDING_ID_MAX: usize = 300;

/// Slack incoming-webhook payload with Block Kit (`{"text": fallback, "blocks": [...]}`): header
/// (severity + title), summary with fields (rule, severity, cloud, account, region, snapshot,
/// first and last seen), the chain as a compact list, resources, actors, techniques, next steps,
/// and a context block with the finding id.
///
/// Values are escaped (`&`, `<`, `>`), broadcast mentions defused, control characters stripped,
/// identifiers put in code spans that they cannot close, free text (title, summary, next steps)
/// sent as `plain_text`, and every Block Kit length limit respected by truncating with "…".
/// How a reader should take the finding's origin: a baseline finding has no event behind it.
/// The heading of a finding's response: its mode, and whether an action failed.
pub fn response_heading(report: &ResponseReport) -> String {
    if report.failed() {
        format!("Response ({}) FAILED", report.mode)
    } else {
        format!("Response ({})", report.mode)
    }
}

/// One line per response action (`done: ec2:ModifySnapshotAttribute on snap-1: remove … (why)`),
/// or the report's note when it has no actions. Values are not escaped: each renderer escapes.
pub fn response_lines(report: &ResponseReport) -> Vec<String> {
    let mut lines: Vec<String> = report
        .actions
        .iter()
        .map(|a| {
            let mut line = format!(
                "{}: {} on {}: {}",
                a.result.as_str(),
                a.call,
                a.target,
                a.change
            );
            if let Some(reason) = &a.reason {
                line.push_str(&format!(" ({reason})"));
            }
            line
        })
        .collect();
    if let Some(note) = &report.note {
        lines.push(note.clone());
    }
    lines
}

fn found_by_label(found_by: FoundBy) -> &'static str {
    match found_by {
        FoundBy::Events => "events",
        FoundBy::Baseline => "scheduled baseline (no event seen)",
    }
}

///
/// Lengths are counted as Slack counts them ([`slack_len`]), and the text of all blocks together
/// stays within [`MESSAGE_TEXT_MAX`]: when padded values would exceed it, every value's budget is
/// shrunk step by step until the message fits, so no finding is refused by Slack and lost.
pub fn slack_message(f: &Finding) -> Value {
    let mut message = slack_message_scaled(f, BUDGET_STEPS_PERMILLE[0]);
    for &permille in &BUDGET_STEPS_PERMILLE[1..] {
        if text_len(&message["blocks"]) <= MESSAGE_TEXT_MAX {
            break;
        }
        message = slack_message_scaled(f, permille);
    }
    message
}

/// Slack refuses (`msg_blocks_too_long`) messages whose blocks hold more than about 13,000
/// characters in total, well below the sum of the per-block limits; keep a margin below that.
pub const MESSAGE_TEXT_MAX: usize = 12_000;
/// Fractions (per mille) of the per-value budgets tried in turn. The last one bounds the whole
/// message far below [`MESSAGE_TEXT_MAX`] whatever the values hold.
const BUDGET_STEPS_PERMILLE: [usize; 7] = [1000, 600, 400, 250, 150, 100, 50];

/// Total Slack length of every `text` string in a Block Kit value.
fn text_len(value: &Value) -> usize {
    match value {
        Value::Array(items) => items.iter().map(text_len).sum(),
        Value::Object(map) => map
            .iter()
            .map(|(key, v)| match v {
                Value::String(s) if key == "text" => slack_len(s),
                v => text_len(v),
            })
            .sum(),
        _ => 0,
    }
}

fn slack_message_scaled(f: &Finding, permille: usize) -> Value {
    let fit = |limit: usize| limit * permille / 1000;
    let severity = severity_upper(f.severity);

    let header_prefix = format!("{} {severity}: ", severity_emoji(f.severity));
    let header = format!(
        "{header_prefix}{}",
        slack_escape(
            &f.title,
            HEADER_TEXT_MAX.saturating_sub(slack_len(&header_prefix)),
            SlackSpan::Text
        )
    );

    let region = f.region.as_deref().unwrap_or("");
    let first_seen = rfc3339(&f.first_seen);
    let last_seen = rfc3339(&f.last_seen);
    let fields: Vec<Value> = [
        ("Rule", f.rule.id()),
        ("Severity", f.severity.as_str()),
        ("Cloud", f.cloud.as_str()),
        ("Account", f.account.as_str()),
        ("Region", region),
        ("Snapshot", f.snapshot.as_str()),
        ("First seen", first_seen.as_str()),
        ("Last seen", last_seen.as_str()),
        ("Found by", found_by_label(f.found_by)),
    ]
    .iter()
    .take(SECTION_FIELDS_MAX)
    .map(|(label, value)| {
        let label = format!("*{label}*\n");
        let budget = fit(FIELD_TEXT_MAX).saturating_sub(slack_len(&label));
        mrkdwn(format!("{label}{}", slack_code(value, budget)))
    })
    .collect();

    let summary = non_empty(
        slack_escape(&f.summary, fit(SECTION_TEXT_MAX), SlackSpan::Text),
        "(no summary)",
    );

    let events = events_in_time_order(f);
    let event_lines: Vec<String> = events.iter().map(|e| slack_event_line(e, &fit)).collect();
    let chain = compact_list(
        &format!("*Chain* ({} events, in time order)", events.len()),
        &event_lines,
        "events",
        fit(SECTION_TEXT_MAX),
    );

    let resource_lines = bullet_codes(&f.resources, fit(LIST_VALUE_MAX));
    let resources = compact_list(
        &format!("*Resources* ({})", f.resources.len()),
        &resource_lines,
        "resources",
        fit(SECTION_TEXT_MAX),
    );
    let actor_lines = bullet_codes(&f.actors, fit(LIST_VALUE_MAX));
    let actors = compact_list(
        &format!("*Actors* ({})", f.actors.len()),
        &actor_lines,
        "actors",
        fit(SECTION_TEXT_MAX),
    );
    let technique_lines: Vec<String> = f
        .techniques
        .iter()
        .map(|t| format!("• {}", technique_link(t, fit(LIST_VALUE_MAX))))
        .collect();
    let techniques = compact_list(
        "*ATT&amp;CK techniques*",
        &technique_lines,
        "techniques",
        fit(SECTION_TEXT_MAX),
    );

    let mut blocks = vec![
        json!({ "type": "header", "text": { "type": "plain_text", "text": header, "emoji": true } }),
        json!({ "type": "section", "text": plain(summary), "fields": fields }),
    ];
    if let Some(report) = &f.response {
        let lines: Vec<String> = response_lines(report)
            .iter()
            .map(|line| {
                format!(
                    "• {}",
                    slack_escape(line, fit(NEXT_STEP_MAX), SlackSpan::Text)
                )
            })
            .collect();
        let heading = format!("*{}*", response_heading(report));
        let response = compact_list(&heading, &lines, "actions", fit(SECTION_TEXT_MAX));
        blocks.push(section(mrkdwn(response)));
    }
    blocks.extend([
        json!({ "type": "divider" }),
        section(mrkdwn(chain)),
        section(mrkdwn(resources)),
        section(mrkdwn(actors)),
        section(mrkdwn(techniques)),
    ]);
    if !f.next_steps.is_empty() {
        let step_lines: Vec<String> = f
            .next_steps
            .iter()
            .enumerate()
            .map(|(n, step)| {
                let step = slack_escape(step, fit(NEXT_STEP_MAX), SlackSpan::Text);
                format!("{}. {step}", n + 1)
            })
            .collect();
        // plain_text: step wording can carry ids, and plain text cannot be formatted.
        let steps = compact_list("Next steps", &step_lines, "steps", fit(SECTION_TEXT_MAX));
        blocks.push(section(plain(steps)));
    }
    blocks.push(json!({ "type": "divider" }));
    let context = format!(
        "snapwatch finding {}",
        slack_code(&f.id, fit(FINDING_ID_MAX).min(CONTEXT_TEXT_MAX))
    );
    blocks.push(json!({ "type": "context", "elements": [mrkdwn(context)] }));
    blocks.truncate(BLOCKS_MAX);

    let fallback_prefix = format!("[{severity}] snapwatch: ");
    let fallback = format!(
        "{fallback_prefix}{}",
        slack_escape(
            &f.title,
            FALLBACK_TEXT_MAX.saturating_sub(slack_len(&fallback_prefix)),
            SlackSpan::Text
        )
    );
    json!({ "text": fallback, "blocks": blocks })
}

fn severity_upper(severity: Severity) -> String {
    severity.as_str().to_ascii_uppercase()
}

fn severity_emoji(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => ":rotating_light:",
        Severity::High => ":red_circle:",
        Severity::Medium => ":large_orange_diamond:",
        Severity::Low => ":large_blue_circle:",
        Severity::Info => ":information_source:",
    }
}

fn rfc3339(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The chain sorted by event time. The sort is stable, so events with equal times keep the
/// engine's order.
fn events_in_time_order(f: &Finding) -> Vec<&ChainEvent> {
    let mut events: Vec<&ChainEvent> = f.events.iter().collect();
    events.sort_by_key(|event| event.time);
    events
}

/// The readable tail of a resource id: the last path segment of Azure / GCP / ARN paths, the
/// name part of a colon-separated ARN.
fn short_resource_name(id: &str) -> &str {
    let last = id.rsplit('/').find(|part| !part.is_empty()).unwrap_or(id);
    if last.starts_with("arn:") {
        last.rsplit(':').next().unwrap_or(last)
    } else {
        last
    }
}

/// Characters that break or disguise displayed text: Unicode control characters (C0, DEL,
/// C1, so line breaks, NEL and ESC), the line / paragraph separators and bidirectional
/// controls, which are not "control" to Unicode but split or reorder what people read, and the
/// invisible format characters (zero-width spaces and joiners, BOM, soft hyphen, Hangul
/// fillers, tag characters…), which make two different principals look the same.
pub fn is_display_hazard(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08E2}'
                | '\u{115F}'..='\u{1160}'
                | '\u{17B4}'..='\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

/// The one escaping for every line a person reads (text findings, stderr, reject reasons):
/// display hazards become visible `\u{1b}`-style escapes, everything else is kept.
pub fn escape_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_visible(&mut out, c);
    }
    out
}

fn push_visible(out: &mut String, c: char) {
    if is_display_hazard(c) {
        let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
    } else {
        out.push(c);
    }
}

/// Slack-safe text of at most `max_len` characters as Slack counts them (UTF-16 code units,
/// see [`slack_len`]).
///
/// Line breaks and tabs become spaces (words stay apart), other display hazards are shown as
/// `\u{..}` escapes as in [`escape_line`] (an invisible character must not make two values
/// look alike), `&`, `<` and `>` are escaped as Slack requires (which also kills `<!channel>`,
/// `<@U…>` and `<url|label>` injection), `@channel`, `@here` and `@everyone` get a WORD JOINER
/// after the `@` so they cannot notify, and inside code spans ([`SlackSpan::Code`]) backticks
/// become U+02CB so a value cannot close its span. A cut is marked with "…" and never splits an
/// escape.
fn slack_escape(raw: &str, max_len: usize, span: SlackSpan) -> String {
    // Hazards are replaced before mentions are looked for: "@\u{1}here" must not survive as
    // "@here". Each entry is what mention matching sees, and the escape shown instead, if any.
    let cleaned: Vec<(char, Option<String>)> = raw
        .chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => (' ', None),
            c if is_display_hazard(c) => ('\\', Some(escape_line(&c.to_string()))),
            c => (c, None),
        })
        .collect();

    let mut out = String::with_capacity(cleaned.len());
    let mut out_len = 0;
    // (byte length, Slack length) of `out` after each whole piece: where a cut is safe.
    let mut cut_points = vec![(0usize, 0usize)];
    for (i, (c, escape)) in cleaned.iter().enumerate() {
        let piece_len = match (*c, escape) {
            (_, Some(escape)) => push_counted(&mut out, escape),
            ('&', _) => push_counted(&mut out, "&amp;"),
            ('<', _) => push_counted(&mut out, "&lt;"),
            ('>', _) => push_counted(&mut out, "&gt;"),
            ('`', _) if span == SlackSpan::Code => push_counted(&mut out, "\u{02CB}"),
            ('@', _) if starts_with_broadcast(cleaned.iter().skip(i + 1).map(|(c, _)| c)) => {
                push_counted(&mut out, "@\u{2060}")
            }
            (c, _) => {
                out.push(c);
                c.len_utf16()
            }
        };
        out_len += piece_len;
        cut_points.push((out.len(), out_len));
    }
    if out_len <= max_len {
        return out;
    }
    if max_len == 0 {
        return String::new();
    }
    let budget = max_len - 1; // room for "…"
    let keep_bytes = cut_points
        .iter()
        .rev()
        .find(|(_, len)| *len <= budget)
        .map_or(0, |(bytes, _)| *bytes);
    out.truncate(keep_bytes);
    out.push('…');
    out
}

/// Where escaped text lands in a Slack message: code spans also need their backticks neutralised.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SlackSpan {
    /// mrkdwn or plain text.
    Text,
    /// Inside a `` `code` `` span.
    Code,
}

/// Length as Slack counts it: UTF-16 code units, so a character outside the Basic Multilingual
/// Plane (most emoji, mathematical letters, tag characters) counts twice.
pub fn slack_len(s: &str) -> usize {
    s.encode_utf16().count()
}

fn push_counted(out: &mut String, piece: &str) -> usize {
    out.push_str(piece);
    slack_len(piece)
}

/// Whether the characters after an `@` spell a broadcast mention, in any letter case.
fn starts_with_broadcast<'a>(rest: impl Iterator<Item = &'a char> + Clone) -> bool {
    ["channel", "here", "everyone"].iter().any(|word| {
        let mut rest = rest.clone();
        word.chars().all(|expected| {
            rest.next()
                .is_some_and(|c| c.to_lowercase().eq(std::iter::once(expected)))
        })
    })
}

/// A value as a mrkdwn code span (no formatting or auto-linking applies inside) of at most
/// `max_chars` characters including the backticks. Empty values show as "(none)", because
/// an empty span renders as two stray backticks.
fn slack_code(raw: &str, max_chars: usize) -> String {
    let inner = slack_escape(raw, max_chars.saturating_sub(2), SlackSpan::Code);
    if inner.trim().is_empty() {
        "(none)".to_owned()
    } else {
        format!("`{inner}`")
    }
}

fn slack_event_line(event: &ChainEvent, fit: &impl Fn(usize) -> usize) -> String {
    let or_unknown = |value: Option<&str>, max: usize| {
        value.map_or_else(|| "(unknown)".to_owned(), |v| slack_code(v, max))
    };
    format!(
        "• {} {} by {} from {}",
        slack_code(&rfc3339(&event.time), 40),
        slack_code(&event.name, fit(EVENT_NAME_MAX)),
        or_unknown(event.actor.as_deref(), fit(EVENT_ACTOR_MAX)),
        or_unknown(event.source_ip.as_deref(), fit(EVENT_IP_MAX))
    )
}

fn bullet_codes(values: &[String], max_len: usize) -> Vec<String> {
    values
        .iter()
        .map(|v| format!("• {}", slack_code(v, max_len)))
        .collect()
}

/// `T1578.001` → a link to its ATT&CK page. Anything not shaped like a technique id is shown
/// as code instead, so the URL is only ever built from digits.
fn technique_link(technique: &str, max_len: usize) -> String {
    let mut parts = technique.strip_prefix('T').unwrap_or("").split('.');
    let base = parts.next().unwrap_or("");
    let sub = parts.next();
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let well_formed = digits(base, 4) && sub.is_none_or(|s| digits(s, 3)) && parts.next().is_none();
    if !well_formed {
        return slack_code(technique, max_len);
    }
    match sub {
        Some(sub) => {
            format!("<https://attack.mitre.org/techniques/T{base}/{sub}/|{technique}>")
        }
        None => format!("<https://attack.mitre.org/techniques/T{base}/|{technique}>"),
    }
}

/// `heading` and the `lines` under it in at most `max_chars` characters and
/// [`LIST_LINES_MAX`] lines. When they do not all fit, the first and the last lines are kept
/// (how a chain started and how it ended) with "… (N more <noun>)" between them.
fn compact_list(heading: &str, lines: &[String], noun: &str, max_chars: usize) -> String {
    if lines.is_empty() {
        return format!("{heading}\nnone");
    }
    let line_chars: Vec<usize> = lines.iter().map(|l| slack_len(l) + 1).collect();
    let heading_chars = slack_len(heading);
    if lines.len() <= LIST_LINES_MAX
        && heading_chars + line_chars.iter().sum::<usize>() <= max_chars
    {
        return std::iter::once(heading)
            .chain(lines.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("\n");
    }

    let more_line = |hidden: usize| format!("… ({hidden} more {noun})");
    // Reserve room for the widest possible "more" line before choosing lines.
    let mut budget = max_chars
        .saturating_sub(heading_chars)
        .saturating_sub(slack_len(&more_line(lines.len())) + 1);
    let shown_max = LIST_LINES_MAX.min(lines.len());
    let (mut head, mut tail) = (0usize, 0usize);
    loop {
        let mut progressed = false;
        for take_head in [true, false] {
            if head + tail >= shown_max {
                break;
            }
            let index = if take_head {
                head
            } else {
                lines.len() - 1 - tail
            };
            let cost = line_chars.get(index).copied().unwrap_or(usize::MAX);
            if cost <= budget {
                budget -= cost;
                if take_head {
                    head += 1;
                } else {
                    tail += 1;
                }
                progressed = true;
            }
        }
        if !progressed || head + tail >= shown_max {
            break;
        }
    }

    let hidden = lines.len() - head - tail;
    let mut out = heading.to_owned();
    for line in lines.iter().take(head) {
        out.push('\n');
        out.push_str(line);
    }
    if hidden > 0 {
        out.push('\n');
        out.push_str(&more_line(hidden));
    }
    for line in lines.iter().skip(lines.len() - tail) {
        out.push('\n');
        out.push_str(line);
    }
    out
}

fn non_empty(text: String, placeholder: &str) -> String {
    if text.trim().is_empty() {
        placeholder.to_owned()
    } else {
        text
    }
}

/// mrkdwn with `verbatim`: Slack does not auto-link URLs or names in it, a second line of
/// defence behind the escaping.
fn mrkdwn(text: String) -> Value {
    json!({ "type": "mrkdwn", "text": text, "verbatim": true })
}

/// plain_text without emoji conversion: nothing in it is interpreted.
fn plain(text: String) -> Value {
    json!({ "type": "plain_text", "text": text, "emoji": false })
}

fn section(text: Value) -> Value {
    json!({ "type": "section", "text": text })
}

#[cfg(test)]
mod tests;
