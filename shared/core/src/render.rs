//! Alert rendering: a [`Finding`] as JSON, as plain text for people, as a Slack Block Kit
//! message and as the fields of an SNS publish.
//!
//! Pure functions, no I/O. Every string inside a finding can be attacker-controlled (actor
//! names, resource ids, tags end up in ids, titles and summaries), so each form neutralises
//! what its reader would interpret: control characters in text (terminal escapes, forged
//! lines), mentions / links / formatting in Slack, non-ASCII and line breaks in the SNS subject.

use crate::model::{ChainEvent, Finding, FoundBy, Severity};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::fmt::Write as _;

pub mod asff;
pub mod ocsf;

/// The finding JSON of DESIGN section 4, one line (this is the SNS message body and the CLI's jsonl).
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
            false
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
        slack_escape(&f.summary, fit(SECTION_TEXT_MAX), false),
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
        json!({ "type": "divider" }),
        section(mrkdwn(chain)),
        section(mrkdwn(resources)),
        section(mrkdwn(actors)),
        section(mrkdwn(techniques)),
    ];
    if !f.next_steps.is_empty() {
        let step_lines: Vec<String> = f
            .next_steps
            .iter()
            .enumerate()
            .map(|(n, step)| {
                let step = slack_escape(step, fit(NEXT_STEP_MAX), false);
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
            false
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
/// after the `@` so they cannot notify, and inside code spans (`in_code`) backticks become
/// U+02CB so a value cannot close its span. A cut is marked with "…" and never splits an escape.
fn slack_escape(raw: &str, max_len: usize, in_code: bool) -> String {
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
            ('`', _) if in_code => push_counted(&mut out, "\u{02CB}"),
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
    let inner = slack_escape(raw, max_chars.saturating_sub(2), true);
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
mod tests {
    use super::*;
    use crate::model::Cloud;
    use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};

    const HOSTILE: &str =
        "<!channel> @here @Everyone <https://evil.example|click> <@U123> & co\nline2\x1b[31mred`*b*`";

    fn at(time: &str) -> DateTime<Utc> {
        time.parse().expect("test timestamp")
    }

    fn event(
        id: &str,
        name: &str,
        time: &str,
        actor: Option<&str>,
        ip: Option<&str>,
    ) -> ChainEvent {
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
        assert!(subject
            .starts_with("[CRITICAL] snapwatch chain.exposed-restore aws 1111<!channel> @here"));
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
        assert_eq!(slack_escape(&wide(3), 5, false), "\u{1D41A}\u{1D41A}…");
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
        assert_eq!(slack_escape("a&b", 3, false), "a…");
        assert_eq!(slack_escape("a&b", 6, false), "a…");
        assert_eq!(slack_escape("a&bc", 7, false), "a&amp;…");
        assert_eq!(slack_escape("a&b", 7, false), "a&amp;b");
        assert_eq!(slack_escape("abc", 0, false), "");
        assert_eq!(slack_code("", 10), "(none)");
        assert_eq!(slack_code("x`y", 10), "`x\u{02CB}y`");
    }
}
