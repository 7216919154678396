//! One self-contained HTML page for a list of findings (CLI `--format html`): a summary table
//! (sortable by severity and time) and, per finding, the chain as a picture (inline SVG), the
//! events on a time axis with actor and source IP, and the next steps.
//!
//! The page fetches nothing: inline CSS, inline SVG and one small inline script, pinned by a
//! Content-Security-Policy that allows only those two blocks (by hash) and no network at all.
//! Every value from a log is attacker-controlled: it goes through [`html`] (display hazards made
//! visible as in [`crate::render::escape_line`], then `& < > " '` as entities), so it can neither
//! open a tag, leave an attribute, close the `<style>` block nor reorder or hide text. The CSP is a
//! second wall: an injected script would not match the hash and would not run.
//!
//! Layout is a pure function of the findings, so the same findings give the same bytes.

use crate::model::{ChainEvent, Finding, FoundBy, Severity};
use crate::render::escape_line;
use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Text shown in a graph box before it is cut (the full id stays in the box's tooltip).
const NODE_LABEL_MAX: usize = 24;
/// Boxes drawn per graph column; the rest are summed up in a "+N more" box.
const NODES_PER_COLUMN_MAX: usize = 6;
/// Events drawn on one time axis; the event table below always lists all of them.
const AXIS_EVENTS_MAX: usize = 60;

/// `s` made safe as HTML text or a quoted attribute value.
pub fn html(s: &str) -> String {
    let visible = escape_line(s);
    let mut out = String::with_capacity(visible.len());
    for c in visible.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// [`html`] of at most `max` characters (counted before escaping), "…" marking a cut.
fn html_cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return html(s);
    }
    let kept: String = s.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", html(&kept))
}

const STYLE: &str = r#"
:root{--crit:#b3122e;--high:#d9480f;--med:#b7791f;--low:#2b6cb0;--info:#4a5568;--ink:#1a202c;--mute:#5f6b7a;--line:#d8dee6;--bg:#f5f7fa}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
header.page{background:#14213d;color:#fff;padding:18px 28px}
header.page h1{margin:0;font-size:20px;font-weight:600}
header.page p{margin:4px 0 0;color:#c9d3e3}
main{padding:18px 28px;max-width:1180px}
.counts span{display:inline-block;margin-right:8px}
.badge{display:inline-block;min-width:64px;text-align:center;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;font-weight:600;text-transform:uppercase;letter-spacing:.03em}
.sev-critical{--sev:var(--crit)}.sev-high{--sev:var(--high)}.sev-medium{--sev:var(--med)}.sev-low{--sev:var(--low)}.sev-info{--sev:var(--info)}
.badge{background:var(--sev)}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--mute);font-weight:600;white-space:nowrap}
th[data-key]{cursor:pointer;user-select:none}
th[data-key]::after{content:" \2195";color:#a0aec0}
th[aria-sort=ascending]::after{content:" \25B2";color:var(--ink)}
th[aria-sort=descending]::after{content:" \25BC";color:var(--ink)}
td.rule-cell,td.where,td.when{white-space:nowrap}
td.mono,.mono{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12px;overflow-wrap:anywhere}
.summary{margin:14px 0 26px;border:1px solid var(--line);border-radius:6px;overflow:hidden}
section.finding{background:#fff;border:1px solid var(--line);border-left:6px solid var(--sev);border-radius:6px;margin:0 0 22px;padding:14px 18px}
section.finding h2{margin:0 0 4px;font-size:17px;overflow-wrap:anywhere}
.rule{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:13px;color:var(--sev);font-weight:600;margin-left:6px}
.meta{color:var(--mute);font-size:12.5px;overflow-wrap:anywhere}
.meta b{color:var(--ink);font-weight:600}
h3{font-size:13px;text-transform:uppercase;letter-spacing:.05em;color:var(--mute);margin:16px 0 6px}
svg{display:block;max-width:100%;height:auto;font-family:system-ui,"DejaVu Sans",sans-serif}
svg .node rect{fill:#fff;stroke:#8795a8;stroke-width:1.2}
svg .node.anchor rect{stroke:var(--sev);stroke-width:2.4}
svg .node .kind{font-size:10px;fill:var(--mute);text-transform:uppercase;letter-spacing:.04em}
svg .node .name{font-size:12px;fill:var(--ink);font-family:"DejaVu Sans Mono",Menlo,monospace}
svg .col{font-size:11px;fill:var(--mute);font-weight:600}
svg .edge{fill:none;stroke:#9aa7b8;stroke-width:1.4;marker-end:url(#arrow)}
svg.defs{position:absolute;width:0;height:0}
svg .label{font-size:11px;fill:var(--ink)}
svg .axis{stroke:#8795a8;stroke-width:1.2}
svg .tick{font-size:11px;fill:var(--mute)}
svg .dot{stroke:#fff;stroke-width:1.5}
svg .num{font-size:10px;fill:#fff;font-weight:700}
ol.steps{margin:4px 0 0;padding-left:22px}
ol.steps li{margin:2px 0}
.actor{display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:5px;vertical-align:-1px}
.empty{padding:30px;background:#fff;border:1px solid var(--line);border-radius:6px}
footer{color:var(--mute);font-size:12px;padding:0 28px 24px}
"#;

/// Sorts the summary table by a clicked column (or `#sort=KEY` in the address); marks the page
/// ready for the browser test.
const SCRIPT: &str = r#"
(function(){
  var table=document.getElementById("summary");
  if(table){
    var body=table.tBodies[0];
    var heads=table.querySelectorAll("th[data-key]");
    heads.forEach(function(th){
      th.addEventListener("click",function(){
        var key=th.getAttribute("data-key");
        var desc=th.getAttribute("aria-sort")!=="descending";
        heads.forEach(function(h){h.removeAttribute("aria-sort");});
        th.setAttribute("aria-sort",desc?"descending":"ascending");
        var rows=Array.prototype.slice.call(body.rows);
        rows.sort(function(a,b){
          var x=Number(a.getAttribute("data-"+key)),y=Number(b.getAttribute("data-"+key));
          var d=desc?y-x:x-y;
          return d!==0?d:Number(a.getAttribute("data-order"))-Number(b.getAttribute("data-order"));
        });
        rows.forEach(function(r){body.appendChild(r);});
      });
    });
    // A link can carry its order: report.html#sort=severity (descending).
    var wanted=/^#sort=(severity|first|last|events)$/.exec(location.hash);
    if(wanted){table.querySelector("th[data-key='"+wanted[1]+"']").click();}
  }
  document.documentElement.setAttribute("data-report-ready","1");
})();
"#;

fn severity_rank(severity: Severity) -> u8 {
    match severity {
        Severity::Info => 0,
        Severity::Low => 1,
        Severity::Medium => 2,
        Severity::High => 3,
        Severity::Critical => 4,
    }
}

fn rfc3339(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// `2026-03-02 09:01:10` (UTC): shorter than RFC 3339 for tables and axis ticks.
fn short_time(time: &DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn csp_hash(block: &str) -> String {
    format!("'sha256-{}'", base64(&Sha256::digest(block.as_bytes())))
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The whole page. `generated_at` is the scan's clock (the newest event time for exported
/// logs), shown in the header; findings appear in the order given.
pub fn page(findings: &[&Finding], generated_at: DateTime<Utc>) -> String {
    let mut out = String::with_capacity(4096 + findings.len() * 6144);
    let csp = format!(
        "default-src 'none'; style-src {}; script-src {}; img-src data:; base-uri 'none'; form-action 'none'",
        csp_hash(STYLE),
        csp_hash(SCRIPT)
    );
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\" data-findings=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>snapwatch report: {} finding{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        findings.len(),
        findings.len(),
        if findings.len() == 1 { "" } else { "s" },
    );
    let _ = write!(
        out,
        "<svg class=\"defs\" aria-hidden=\"true\" xmlns=\"http://www.w3.org/2000/svg\"><defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0 0L10 5L0 10z\" fill=\"#9aa7b8\"/></marker></defs></svg>\
         <header class=\"page\"><h1>snapwatch: snapshot abuse chains</h1>\
         <p>{} finding{} · evaluated at {} UTC · ATT&amp;CK T1578.001</p></header>\n<main>\n",
        findings.len(),
        if findings.len() == 1 { "" } else { "s" },
        short_time(&generated_at)
    );
    if findings.is_empty() {
        out.push_str("<p class=\"empty\" id=\"no-findings\">No findings to report: no snapshot chain in these logs matched a rule, or each one was reported before.</p>\n");
    } else {
        summary_table(&mut out, findings);
        for (n, finding) in findings.iter().enumerate() {
            finding_section(&mut out, n + 1, finding);
        }
    }
    let _ = write!(
        out,
        "</main>\n<footer>Generated by snapwatch {}. Times are UTC. Every value from the logs is shown as logged; invisible and direction-changing characters appear as \\u{{…}} escapes.</footer>\n<script>{SCRIPT}</script>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    );
    out
}

fn summary_table(out: &mut String, findings: &[&Finding]) {
    let mut counts: BTreeMap<std::cmp::Reverse<Severity>, usize> = BTreeMap::new();
    for f in findings {
        *counts.entry(std::cmp::Reverse(f.severity)).or_default() += 1;
    }
    out.push_str("<p class=\"counts\">");
    for (severity, count) in &counts {
        let _ = write!(
            out,
            "<span class=\"sev-{0}\"><span class=\"badge\">{0}</span> {1}</span>",
            severity.0.as_str(),
            count
        );
    }
    out.push_str(
        "</p>\n<div class=\"summary\"><table id=\"summary\">\n<thead><tr>\
        <th data-key=\"severity\">Severity</th><th>Rule</th><th>Finding</th><th>Where</th>\
        <th data-key=\"first\">First seen</th><th data-key=\"last\">Last seen</th>\
        <th data-key=\"events\">Events</th></tr></thead>\n<tbody>\n",
    );
    for (n, f) in findings.iter().enumerate() {
        let _ = writeln!(
            out,
            "<tr class=\"sev-{sev}\" data-order=\"{n}\" data-severity=\"{rank}\" data-first=\"{first}\" data-last=\"{last}\" data-events=\"{events}\">\
             <td><span class=\"badge\">{sev}</span></td><td class=\"mono rule-cell\">{rule}</td>\
             <td><a href=\"#finding-{num}\">{title}</a></td><td class=\"mono where\">{cloud} {region}</td>\
             <td class=\"mono\">{first_text}</td><td class=\"mono\">{last_text}</td><td>{events}</td></tr>",
            sev = f.severity.as_str(),
            rank = severity_rank(f.severity),
            first = f.first_seen.timestamp_millis(),
            last = f.last_seen.timestamp_millis(),
            events = f.events.len(),
            rule = html(f.rule.id()),
            num = n + 1,
            title = html_cut(&f.title, 120),
            cloud = f.cloud,
            // GCP findings carry no region: the project says where instead.
            region = html_cut(f.region.as_deref().unwrap_or(&f.account), 24),
            first_text = short_time(&f.first_seen),
            last_text = short_time(&f.last_seen),
        );
    }
    out.push_str("</tbody></table></div>\n");
}

fn finding_section(out: &mut String, number: usize, f: &Finding) {
    let _ = write!(
        out,
        "<section class=\"finding sev-{sev}\" id=\"finding-{number}\" data-finding=\"{number}\">\n\
         <h2><span class=\"badge\">{sev}</span> <span class=\"rule\">{rule}</span> {title}</h2>\n\
         <div class=\"meta\"><b>{cloud}</b> account <b class=\"mono\">{account}</b> · region <b>{region}</b> · \
         snapshot <b class=\"mono\">{snapshot}</b><br>finding <span class=\"mono\">{id}</span> · \
         first seen {first} · last seen {last} · found by {found_by} · ATT&amp;CK {techniques}</div>\n\
         <p>{summary}</p>\n",
        sev = f.severity.as_str(),
        rule = html(f.rule.id()),
        title = html(&f.title),
        cloud = f.cloud,
        account = html(&f.account),
        region = f.region.as_deref().map_or_else(|| "unknown".to_owned(), html),
        snapshot = html(&f.snapshot),
        id = html(&f.id),
        first = rfc3339(&f.first_seen),
        last = rfc3339(&f.last_seen),
        found_by = match f.found_by {
            FoundBy::Events => "received events",
            FoundBy::Baseline => "the snapshot baseline",
        },
        techniques = if f.techniques.is_empty() {
            "none".to_owned()
        } else {
            f.techniques
                .iter()
                .map(|t| html(t))
                .collect::<Vec<_>>()
                .join(", ")
        },
        summary = html(&f.summary),
    );
    if let Some(report) = &f.response {
        let _ = write!(
            out,
            "<h3>{}</h3>\n<ul class=\"response\">",
            html(&crate::render::response_heading(report))
        );
        for line in crate::render::response_lines(report) {
            let _ = write!(out, "<li>{}</li>", html(&line));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("<h3>The chain</h3>\n");
    chain_graph(out, f);
    let events = events_in_time_order(f);
    let actors = actor_colors(&events);
    let _ = writeln!(out, "<h3>What happened when ({} events)</h3>", events.len());
    time_axis(out, &events, &actors);
    event_table(out, &events, &actors);
    out.push_str("<h3>Next steps</h3>\n<ol class=\"steps\">");
    if f.next_steps.is_empty() {
        out.push_str("<li>none</li>");
    }
    for step in &f.next_steps {
        let _ = write!(out, "<li>{}</li>", html(step));
    }
    out.push_str("</ol>\n</section>\n");
}

fn events_in_time_order(f: &Finding) -> Vec<&ChainEvent> {
    let mut events: Vec<&ChainEvent> = f.events.iter().collect();
    events.sort_by_key(|event| event.time);
    events
}

/// A stable colour per actor, in order of first appearance; unknown actors are grey.
fn actor_colors<'e>(events: &[&'e ChainEvent]) -> BTreeMap<&'e str, &'static str> {
    const PALETTE: [&str; 8] = [
        "#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b83280", "#2c7a7b", "#975a16", "#4a5568",
    ];
    let mut colors = BTreeMap::new();
    for event in events {
        if let Some(actor) = event.actor.as_deref() {
            let next = PALETTE[colors.len() % PALETTE.len()];
            colors.entry(actor).or_insert(next);
        }
    }
    colors
}

fn color_of(event: &ChainEvent, actors: &BTreeMap<&str, &'static str>) -> &'static str {
    event
        .actor
        .as_deref()
        .and_then(|a| actors.get(a).copied())
        .unwrap_or("#a0aec0")
}

/// Stages of a chain, left to right. A finding lists resource ids only, so the stage comes
/// from the id's shape (EC2 prefixes, RDS ARNs, Azure and GCP resource paths).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// The volume, disk or database a snapshot was taken of.
    Source,
    Snapshot,
    /// Disks, volumes and databases restored from a snapshot.
    Restored,
    Instance,
    Network,
}

impl Stage {
    const ALL: [Stage; 5] = [
        Stage::Source,
        Stage::Snapshot,
        Stage::Restored,
        Stage::Instance,
        Stage::Network,
    ];

    fn heading(self, disks: DiskRoles) -> &'static str {
        match self {
            Stage::Source => "source",
            Stage::Snapshot => "snapshots & images",
            Stage::Restored if disks == DiskRoles::Either => "volumes & disks",
            Stage::Restored => "restored volumes & disks",
            Stage::Instance => "instances",
            Stage::Network => "network rules",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Snapshot,
    Image,
    Disk,
    Database,
    Instance,
    Interface,
    Network,
    Other,
}

impl Shape {
    fn of(id: &str) -> Shape {
        let lower = id.to_ascii_lowercase();
        let last = lower.rsplit('/').next().unwrap_or(&lower);
        let has = |part: &str| lower.contains(part);
        if lower.starts_with("arn:aws:rds:") {
            if has(":snapshot:") || has(":cluster-snapshot:") {
                Shape::Snapshot
            } else {
                Shape::Database
            }
        } else if last.starts_with("snap-") || has("/snapshots/") {
            Shape::Snapshot
        } else if last.starts_with("ami-") || has("/images/") {
            Shape::Image
        } else if last.starts_with("vol-") || has("/disks/") {
            Shape::Disk
        } else if last.starts_with("i-") || has("/instances/") || has("/virtualmachines/") {
            Shape::Instance
        } else if last.starts_with("eni-") || has("/networkinterfaces/") {
            Shape::Interface
        } else if last.starts_with("sg-")
            || has("/networksecuritygroups/")
            || has("/networks/")
            || has("/firewalls/")
        {
            Shape::Network
        } else {
            Shape::Other
        }
    }

    fn label(self) -> &'static str {
        match self {
            Shape::Snapshot => "snapshot",
            Shape::Image => "image",
            Shape::Disk => "volume / disk",
            Shape::Database => "database",
            Shape::Instance => "instance",
            Shape::Interface => "network interface",
            Shape::Network => "network group",
            Shape::Other => "resource",
        }
    }
}

/// Whether the chain's disks and databases are what its snapshot was taken of or restores of
/// it: sources when the events took a snapshot and made no disk or database (a restore straight
/// into an instance creates a volume the logs do not name).
fn disk_roles(f: &Finding) -> DiskRoles {
    let names: Vec<String> = f
        .events
        .iter()
        .map(|e| e.name.to_ascii_lowercase())
        .collect();
    let any = |parts: &[&str]| names.iter().any(|n| parts.iter().any(|p| n.contains(p)));
    let snapshot_taken = any(&[
        "createsnapshot",
        "createdbsnapshot",
        "createdbclustersnapshot",
        "snapshots/write",
        "snapshots.insert",
        "createimage",
    ]);
    let disk_made = any(&["createvolume", "restoredb", "disks/write", "disks.insert"]);
    match (snapshot_taken, disk_made) {
        (true, false) => DiskRoles::Sources,
        (true, true) => DiskRoles::Either,
        (false, _) => DiskRoles::Restores,
    }
}

/// What the chain's disks, volumes and databases were to its snapshot, as far as the event
/// names tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DiskRoles {
    Sources,
    Restores,
    /// A snapshot was taken and a disk made: some disks are sources, some restores.
    Either,
}

fn short_name(id: &str) -> &str {
    let last = id.rsplit('/').find(|part| !part.is_empty()).unwrap_or(id);
    if last.starts_with("arn:") {
        last.rsplit(':').next().unwrap_or(last)
    } else {
        last
    }
}

/// The chain as columns of boxes (source → snapshot → restores → instances → network rules),
/// each column joined to the next non-empty one.
fn chain_graph(out: &mut String, f: &Finding) {
    const COL_W: i64 = 236;
    const BOX_W: i64 = 180;
    const BOX_H: i64 = 40;
    const ROW_H: i64 = 52;
    const TOP: i64 = 24;
    let disks = disk_roles(f);
    let sources = disks == DiskRoles::Sources;
    let mut ids: Vec<&str> = f.resources.iter().map(String::as_str).collect();
    if !ids.contains(&f.snapshot.as_str()) {
        ids.push(&f.snapshot);
    }
    let mut columns: BTreeMap<Stage, Vec<(&str, Shape)>> = BTreeMap::new();
    for id in ids {
        let shape = match Shape::of(id) {
            // The finding names its snapshot even when the id has no recognisable form.
            Shape::Other if id == f.snapshot => Shape::Snapshot,
            shape => shape,
        };
        let stage = match shape {
            Shape::Snapshot | Shape::Image => Stage::Snapshot,
            _ if id == f.snapshot => Stage::Snapshot,
            Shape::Disk | Shape::Database if sources => Stage::Source,
            Shape::Disk | Shape::Database | Shape::Other => Stage::Restored,
            Shape::Instance | Shape::Interface => Stage::Instance,
            Shape::Network => Stage::Network,
        };
        columns.entry(stage).or_default().push((id, shape));
    }
    for nodes in columns.values_mut() {
        // The anchor snapshot first, the rest by id: the picture does not depend on input order.
        nodes.sort_by_key(|(id, _)| (*id != f.snapshot, *id));
    }
    let used: Vec<Stage> = Stage::ALL
        .into_iter()
        .filter(|s| columns.contains_key(s))
        .collect();
    let rows = columns
        .values()
        .map(|nodes| nodes.len().min(NODES_PER_COLUMN_MAX + 1))
        .max()
        .unwrap_or(1) as i64;
    let width = used.len() as i64 * COL_W;
    let height = TOP + rows * ROW_H + 4;
    let _ = writeln!(
        out,
        "<svg class=\"chain\" role=\"img\" aria-label=\"chain of {} resources\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">",
        f.resources.len()
    );
    // Box centres per column, for the edges.
    let mut centres: Vec<Vec<(i64, i64)>> = Vec::new();
    let mut boxes = String::new();
    for (col, stage) in used.iter().enumerate() {
        let x = col as i64 * COL_W + 8;
        let _ = writeln!(
            out,
            "<text class=\"col\" x=\"{x}\" y=\"14\">{}</text>",
            html(stage.heading(disks))
        );
        let nodes = &columns[stage];
        let shown = if nodes.len() > NODES_PER_COLUMN_MAX + 1 {
            NODES_PER_COLUMN_MAX
        } else {
            nodes.len()
        };
        let column_rows = shown + usize::from(shown < nodes.len());
        // Centre a short column against the tallest one.
        let offset = (rows - column_rows as i64) * ROW_H / 2;
        let mut here = Vec::new();
        for (row, (id, shape)) in nodes.iter().take(shown).enumerate() {
            let y = TOP + offset + row as i64 * ROW_H;
            let anchor = if *id == f.snapshot { " anchor" } else { "" };
            let _ = writeln!(
                boxes,
                "<g class=\"node{anchor}\"><title>{full}</title><rect x=\"{x}\" y=\"{y}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"6\"/>\
                 <text class=\"kind\" x=\"{tx}\" y=\"{ky}\">{kind}</text><text class=\"name\" x=\"{tx}\" y=\"{ny}\">{name}</text></g>",
                full = html(id),
                tx = x + 9,
                ky = y + 15,
                ny = y + 31,
                kind = shape.label(),
                name = html_cut(short_name(id), NODE_LABEL_MAX),
            );
            here.push((x, y + BOX_H / 2));
        }
        if shown < nodes.len() {
            let y = TOP + offset + shown as i64 * ROW_H;
            let _ = writeln!(
                boxes,
                "<g class=\"node more\"><rect x=\"{x}\" y=\"{y}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"6\"/>\
                 <text class=\"name\" x=\"{}\" y=\"{}\">+{} more</text></g>",
                x + 9,
                y + 25,
                nodes.len() - shown
            );
            here.push((x, y + BOX_H / 2));
        }
        centres.push(here);
    }
    for pair in centres.windows(2) {
        for &(x1, y1) in &pair[0] {
            for &(x2, y2) in &pair[1] {
                let (start, end) = (x1 + BOX_W, x2 - 3);
                let mid = (start + end) / 2;
                let _ = writeln!(
                    out,
                    "<path class=\"edge\" d=\"M{start} {y1} C{mid} {y1} {mid} {y2} {end} {y2}\"/>"
                );
            }
        }
    }
    out.push_str(&boxes);
    out.push_str("</svg>\n");
}

/// Events as numbered dots above a line from the first to the last event, each with its name
/// when the labels fit in a few lanes; a dot (and its label) that would overlap the one before
/// steps up a lane. The numbers match the event table.
fn time_axis(out: &mut String, events: &[&ChainEvent], actors: &BTreeMap<&str, &'static str>) {
    const WIDTH: i64 = 1000;
    const LEFT: i64 = 20;
    const RIGHT: i64 = 20;
    const LANE_H: i64 = 24;
    const DOT_R: i64 = 9;
    const LABEL_MAX: usize = 30;
    /// Average advance of an 11 px sans-serif character, for packing labels into lanes.
    const CHAR_W: i64 = 7;
    const LABELLED_LANES_MAX: usize = 6;
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        out.push_str("<p class=\"meta\">No events.</p>\n");
        return;
    };
    let span = (last.time - first.time).num_milliseconds().max(1);
    let usable = WIDTH - LEFT - RIGHT;
    let shown = &events[..events.len().min(AXIS_EVENTS_MAX)];
    let xs: Vec<i64> = shown
        .iter()
        .map(|event| {
            if events.len() == 1 {
                LEFT + usable / 2
            } else {
                let offset = (event.time - first.time).num_milliseconds();
                LEFT + offset.saturating_mul(usable) / span
            }
        })
        .collect();
    // Labels go left of the dot near the right end, so they stay inside the picture.
    let label_left = |x: i64, chars: usize| x + DOT_R + 4 + chars as i64 * CHAR_W > WIDTH;
    let pack = |labelled: bool| -> (Vec<usize>, usize) {
        let mut lane_ends: Vec<i64> = Vec::new();
        let mut lanes = Vec::new();
        for (event, &x) in shown.iter().zip(&xs) {
            let chars = if labelled {
                short_event_name(&event.name).chars().count().min(LABEL_MAX)
            } else {
                0
            };
            let text = if chars > 0 {
                4 + chars as i64 * CHAR_W
            } else {
                0
            };
            let (from, to) = if label_left(x, chars) {
                (x - DOT_R - text, x + DOT_R)
            } else {
                (x - DOT_R, x + DOT_R + text)
            };
            let lane = match lane_ends.iter().position(|end| from > end + 3) {
                Some(lane) => lane,
                None => {
                    lane_ends.push(i64::MIN / 2);
                    lane_ends.len() - 1
                }
            };
            lane_ends[lane] = to;
            lanes.push(lane);
        }
        let count = lane_ends.len().max(1);
        (lanes, count)
    };
    let (mut lanes, mut lane_count) = pack(true);
    let labelled = lane_count <= LABELLED_LANES_MAX;
    if !labelled {
        (lanes, lane_count) = pack(false);
    }
    let axis_y = 12 + lane_count as i64 * LANE_H;
    let height = axis_y + 30;
    let _ = writeln!(
        out,
        "<svg class=\"timeline\" role=\"img\" aria-label=\"{} events on a time axis\" viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"{axis_y}\" x2=\"{}\" y2=\"{axis_y}\"/>",
        events.len(),
        WIDTH - RIGHT
    );
    let _ = writeln!(
        out,
        "<text class=\"tick\" x=\"{LEFT}\" y=\"{ty}\">{start}</text>\
         <text class=\"tick\" x=\"{mid}\" y=\"{ty}\" text-anchor=\"middle\">{elapsed} elapsed</text>\
         <text class=\"tick\" x=\"{end}\" y=\"{ty}\" text-anchor=\"end\">{finish}</text>",
        ty = axis_y + 20,
        start = short_time(&first.time),
        mid = WIDTH / 2,
        elapsed = human_duration(last.time - first.time),
        end = WIDTH - RIGHT,
        finish = short_time(&last.time),
    );
    for (n, ((event, &x), &lane)) in shown.iter().zip(&xs).zip(&lanes).enumerate() {
        let number = n + 1;
        let y = axis_y - DOT_R - 4 - lane as i64 * LANE_H;
        let label = if labelled {
            let chars = short_event_name(&event.name).chars().count().min(LABEL_MAX);
            let (lx, anchor) = if label_left(x, chars) {
                (x - DOT_R - 4, "end")
            } else {
                (x + DOT_R + 4, "start")
            };
            format!(
                "<text class=\"label\" x=\"{lx}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text>",
                y + 4,
                html_cut(short_event_name(&event.name), LABEL_MAX)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "<g><title>{number}. {time} {name} by {actor} from {ip}</title>\
             <line class=\"axis\" x1=\"{x}\" y1=\"{y}\" x2=\"{x}\" y2=\"{axis_y}\"/>\
             <circle class=\"dot\" cx=\"{x}\" cy=\"{y}\" r=\"{DOT_R}\" fill=\"{color}\"/>\
             <text class=\"num\" x=\"{x}\" y=\"{ny}\" text-anchor=\"middle\">{number}</text>{label}</g>",
            time = rfc3339(&event.time),
            name = html(&event.name),
            actor = event.actor.as_deref().map_or_else(|| "unknown".into(), html),
            ip = event.source_ip.as_deref().map_or_else(|| "unknown".into(), html),
            color = color_of(event, actors),
            ny = y + 3,
        );
    }
    out.push_str("</svg>\n");
    if events.len() > shown.len() {
        let _ = writeln!(
            out,
            "<p class=\"meta\">The axis shows the first {} of {} events; the table lists all.</p>",
            shown.len(),
            events.len()
        );
    }
}

/// The telling end of an operation name for an axis label: `SNAPSHOTS/WRITE` of an Azure
/// operation, `disks.createSnapshot` of a GCP method; AWS names are short already.
fn short_event_name(name: &str) -> &str {
    if let Some((slash, _)) = name.rmatch_indices('/').nth(1) {
        return &name[slash + 1..];
    }
    match name.find(".compute.") {
        Some(at) => &name[at + ".compute.".len()..],
        None => name,
    }
}

fn human_duration(d: chrono::TimeDelta) -> String {
    let secs = d.num_seconds();
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} days {} h", s / 86_400, s % 86_400 / 3600),
    }
}

fn event_table(out: &mut String, events: &[&ChainEvent], actors: &BTreeMap<&str, &'static str>) {
    out.push_str("<table class=\"events\"><thead><tr><th>#</th><th>Time (UTC)</th><th>Event</th><th>Actor</th><th>Source IP</th></tr></thead><tbody>\n");
    for (n, event) in events.iter().enumerate() {
        let color = color_of(event, actors);
        let _ = writeln!(
            out,
            "<tr><td>{num}</td><td class=\"mono when\">{time}</td><td class=\"mono\">{name}</td>\
             <td class=\"mono\"><svg class=\"actor\" width=\"10\" height=\"10\" viewBox=\"0 0 10 10\" aria-hidden=\"true\"><circle cx=\"5\" cy=\"5\" r=\"5\" fill=\"{color}\"/></svg>{actor}</td>\
             <td class=\"mono\">{ip}</td></tr>",
            num = n + 1,
            time = rfc3339(&event.time),
            name = html(&event.name),
            actor = event.actor.as_deref().map_or_else(|| "unknown".into(), html),
            ip = event.source_ip.as_deref().map_or_else(|| "unknown".into(), html),
        );
    }
    out.push_str("</tbody></table>\n");
}

#[cfg(test)]
mod tests;
