//! The first stage of reading a record: a multi-pattern byte search that rules out records which
//! cannot name a consumed operation, before any JSON is parsed. What it does not rule out goes
//! to the probe ([`super::detect`]), which decides exactly as without it.
//!
//! Why skipping is safe: the probe consumes a record only when a JSON string in it, once
//! decoded, is a consumed name (AWS `eventName`, exactly), ends with one (GCP `methodName`
//! suffixes, or the last segment of `request.@type`) or equals one ignoring ASCII case (Azure
//! `operationName`). Without a `\u` or `\/` escape, every other escape decodes to a character no
//! consumed name contains, so the name appears verbatim in the raw bytes. Hence a record is only
//! skipped when it
//! - is framed as one object (first non-space byte `{`, last `}`): anything else may be truncated
//!   or garbage, and the probe rejects it with its reason as before;
//! - holds no `\u` or `\/` escape (either could spell a name in escapes), and no line break
//!   (a pretty-printed record is small, often hand-made, and judged by the probe);
//! - holds no `"Records"`/`"records"` key (a container: each element is judged on its own);
//! - contains none of the AWS names or GCP method suffixes (case-sensitive, as the parsers
//!   compare them; a suffix is searched without its `compute.` service);
//! - when it holds `"operationName"` or `"data"` (the only ways to the Azure branch), contains
//!   none of the Azure names in any ASCII case;
//! - holds one of the keys the probe tells formats apart by (`"eventVersion"`, `"eventSource"`,
//!   `"detail-type"`, `"protoPayload"`, `"operationName"`), so that JSON of no known shape is
//!   still probed and rejected as unknown.
//!
//! What it cannot see: a framed record of a known shape, naming no consumed operation, whose
//! JSON is invalid inside is counted irrelevant rather than rejected (README, Limits).

use super::{aws, azure, gcp};
use aho_corasick::{AhoCorasick, MatchKind};
use std::sync::OnceLock;

/// Keys of a record container (always probed: each element is judged on its own), as the tail
/// every spelling of them contains. Patterns start on bytes that are rare in audit logs, so the
/// SIMD search stops seldom on false candidates (`"re…` starts most CloudTrail keys).
const CONTAINER_KEYS: [&str; 1] = ["ecords\""];

/// Tails of the keys the probe recognises a format by (`"eventVersion"`, `"eventSource"`,
/// `"detail-type"`, `"protoPayload"`, `"operationName"`): a record with none is probed, and
/// rejected as of no known format, as without the prefilter.
const FORMAT_KEYS: [&str; 5] = [
    "tVersion\"",
    "tSource\"",
    "detail-type\"",
    "protoPayload\"",
    "operationName\"",
];

/// Keys under which the probe can find an Azure operation name: at the top level or in an
/// Event Grid `data` object (which serde also accepts as an array, read by position).
const AZURE_KEYS: [&str; 2] = ["operationName\"", "\"data\""];

/// The part of a GCP method suffix searched for: without its `compute.` service, since
/// `….com` ends every host name in a log and would stop the search everywhere.
fn gcp_pattern(suffix: &str) -> &str {
    suffix.strip_prefix("compute.").unwrap_or(suffix)
}

/// What a pattern of the exact-case search stands for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hit {
    /// An AWS event name or GCP method suffix: the record may be consumed.
    Name,
    /// A container key: always probed.
    Container,
    /// A format key; `azure` when the Azure names must be searched too.
    Key { format: bool, azure: bool },
}

/// The compiled searches, built once per process.
struct Searcher {
    exact: AhoCorasick,
    /// What each pattern of `exact` stands for, by pattern index.
    hits: Vec<Hit>,
    /// The Azure operation names, compared ignoring ASCII case as `azure::is_consumed` does.
    azure: AhoCorasick,
}

impl Searcher {
    fn build() -> Option<Searcher> {
        let mut patterns: Vec<&str> = Vec::new();
        let mut hits = Vec::new();
        for (_, name) in aws::CONSUMED_EVENTS {
            patterns.push(name);
            hits.push(Hit::Name);
        }
        for suffix in gcp::CONSUMED_METHODS {
            patterns.push(gcp_pattern(suffix));
            hits.push(Hit::Name);
        }
        for key in CONTAINER_KEYS {
            patterns.push(key);
            hits.push(Hit::Container);
        }
        let mut keys: Vec<&str> = FORMAT_KEYS.to_vec();
        keys.extend(AZURE_KEYS.iter().filter(|k| !FORMAT_KEYS.contains(k)));
        for key in keys {
            patterns.push(key);
            hits.push(Hit::Key {
                format: FORMAT_KEYS.contains(&key),
                azure: AZURE_KEYS.contains(&key),
            });
        }
        // Leftmost-first lets the SIMD (Teddy) search run. No match can hide one that matters:
        // names come first in the list, and a name holds no quote and is part of no key, so it
        // can neither start inside a key's match nor end past one.
        let exact = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(&patterns)
            .ok()?;
        let azure = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(azure::CONSUMED_OPERATIONS)
            .ok()?;
        Some(Searcher { exact, hits, azure })
    }

    fn needs_probe(&self, record: &[u8]) -> bool {
        let record = trim_json_space(record);
        if record.first() != Some(&b'{') || record.last() != Some(&b'}') {
            return true;
        }
        if has_name_escape_or_line_break(record) {
            return true;
        }
        let (mut known_format, mut azure) = (false, false);
        for found in self.exact.find_iter(record) {
            match self.hits.get(found.pattern().as_usize()) {
                Some(Hit::Key { format, azure: a }) => {
                    known_format |= *format;
                    azure |= *a;
                }
                // A name, a container, or (never) an index out of range.
                _ => return true,
            }
        }
        if azure && self.azure.is_match(record) {
            return true;
        }
        !known_format
    }
}

/// `record` without the whitespace JSON allows around a value (not form feeds, which serde
/// rejects).
fn trim_json_space(record: &[u8]) -> &[u8] {
    let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let start = record
        .iter()
        .position(|b| !space(b))
        .unwrap_or(record.len());
    let end = record
        .iter()
        .rposition(|b| !space(b))
        .map_or(start, |i| i + 1);
    record.get(start..end).unwrap_or_default()
}

/// A `\u` or `\/` escape (or an escaped backslash followed by `u` or `/`, which is harmless to
/// probe): the only escapes that decode to characters a consumed name contains. Or a line
/// break: a record spread over lines is a hand-made or pretty-printed export, small and the
/// likeliest to be broken inside, so the probe judges it (and rejects it with its reason).
fn has_name_escape_or_line_break(record: &[u8]) -> bool {
    memchr::memchr2_iter(b'\\', b'\n', record)
        .any(|i| record.get(i) == Some(&b'\n') || matches!(record.get(i + 1), Some(b'u' | b'/')))
}

fn searcher() -> Option<&'static Searcher> {
    static SEARCHER: OnceLock<Option<Searcher>> = OnceLock::new();
    SEARCHER.get_or_init(Searcher::build).as_ref()
}

/// Whether `record` (one JSON text: a line, an array element, a container element) must go to
/// the probe. `false` only for a framed object of a known shape that cannot name a consumed
/// operation: the probe would find it irrelevant. Should the search fail to build (it cannot
/// with these fixed patterns), every record is probed.
pub fn needs_probe(record: &[u8]) -> bool {
    searcher().is_none_or(|s| s.needs_probe(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_builds_and_covers_every_consumed_name() {
        assert!(searcher().is_some());
        for (source, name) in aws::CONSUMED_EVENTS {
            let record = format!(
                r#"{{"eventVersion":"1.08","eventSource":"{source}","eventName":"{name}"}}"#
            );
            assert!(needs_probe(record.as_bytes()), "{name}");
        }
        for suffix in gcp::CONSUMED_METHODS {
            let record = format!(r#"{{"protoPayload":{{"methodName":"v1.{suffix}"}}}}"#);
            assert!(needs_probe(record.as_bytes()), "{suffix}");
        }
        for op in azure::CONSUMED_OPERATIONS {
            let shouted = op.to_ascii_uppercase();
            let record = format!(r#"{{"operationName":"  {shouted} "}}"#);
            assert!(needs_probe(record.as_bytes()), "{op}");
            let grid = format!(r#"{{"eventType":"x","data":["{op}"]}}"#);
            assert!(needs_probe(grid.as_bytes()), "{op}");
        }
    }

    #[test]
    fn only_framed_unescaped_records_of_a_known_shape_are_skipped() {
        let unrelated =
            r#"{"eventVersion":"1.08","eventSource":"s3.amazonaws.com","eventName":"GetObject"}"#;
        assert!(!needs_probe(unrelated.as_bytes()));
        assert!(!needs_probe(format!("  {unrelated}\r\n").as_bytes()));
        // Truncated, not an object, escaped, a container, or of no known shape: probed.
        assert!(needs_probe(&unrelated.as_bytes()[..unrelated.len() - 1]));
        assert!(needs_probe(format!("[{unrelated}]").as_bytes()));
        assert!(needs_probe(
            r#"{"eventVersion":"1.08","eventName":"Create\u0053napshot"}"#.as_bytes()
        ));
        assert!(needs_probe(
            r#"{"operationName":"Microsoft.Compute\/snapshots\/write"}"#.as_bytes()
        ));
        assert!(needs_probe(
            format!(r#"{{"Records":[{unrelated}]}}"#).as_bytes()
        ));
        assert!(needs_probe(br#"{"hello":"world"}"#));
        assert!(needs_probe(unrelated.replace(",", ",\n  ").as_bytes()));
        // Azure names are searched in any case, but only where the probe can read one.
        assert!(!needs_probe(
            br#"{"operationName":"Microsoft.Storage/storageAccounts/listKeys/action"}"#
        ));
        assert!(needs_probe(
            br#"{"operationName":{"value":"MICROSOFT.COMPUTE/DISKS/WRITE"}}"#
        ));
    }

    use super::super::detect::{
        for_each_contained_record, for_each_contained_record_prefiltered, for_each_record,
        for_each_record_prefiltered, probe_says, ProbeSays, RecordOutcome,
    };
    use super::super::Parsed;
    use proptest::prelude::*;
    use std::path::{Path, PathBuf};

    /// The invariant: a record the prefilter skips is never one the probe consumes, nor a
    /// container. The probe finds it irrelevant, or would have rejected it: a framed object
    /// that is invalid inside or of no shape the probe recognises despite a format key (the
    /// difference README, Limits, names).
    fn check(record: &str) -> Result<(), String> {
        if needs_probe(record.as_bytes()) {
            return Ok(());
        }
        match probe_says(record) {
            ProbeSays::Irrelevant | ProbeSays::Rejected => Ok(()),
            says => Err(format!("skipped, but the probe says {says:?}: {record}")),
        }
    }

    /// What a scan keeps of one outcome: the event, a skip reason other than irrelevant, or
    /// whether it was rejected.
    fn kept(o: RecordOutcome<'_>) -> Option<String> {
        match o.result {
            Ok(Parsed::Skipped(super::super::Skip::Irrelevant)) => None,
            Ok(parsed) => Some(format!("{parsed:?}")),
            Err(_) => Some("rejected".into()),
        }
    }

    /// With and without the prefilter, `unit` yields the same events and the same non-irrelevant
    /// skips; rejects differ only where the prefilter counts an invalid record irrelevant.
    fn same_events(unit: &str) -> Result<(), String> {
        let events = |out: &[String]| {
            out.iter()
                .filter(|k| *k != "rejected")
                .cloned()
                .collect::<Vec<_>>()
        };
        for contained in [false, true] {
            let (mut plain, mut filtered) = (Vec::new(), Vec::new());
            if contained {
                for_each_contained_record(unit, &mut |o| plain.extend(kept(o)));
                for_each_contained_record_prefiltered(unit, &mut |o| filtered.extend(kept(o)));
            } else {
                for_each_record(unit, &mut |o| plain.extend(kept(o)));
                for_each_record_prefiltered(unit, &mut |o| filtered.extend(kept(o)));
            }
            if events(&plain) != events(&filtered) {
                return Err(format!("events differ with the prefilter: {unit}"));
            }
        }
        Ok(())
    }

    /// Every record in `text` as the CLI would meet it: each line, and each record (container
    /// elements included) of the whole text and of each line, plus every cut of each record.
    fn check_text(text: &str) -> Result<usize, String> {
        let mut records: Vec<&str> = text.lines().collect();
        records.push(text);
        for unit in text.lines().chain([text]) {
            for_each_record(unit, &mut |o| records.push(o.raw));
        }
        let mut checked = 0;
        for record in records {
            check(record)?;
            same_events(record)?;
            for cut in (1..record.len())
                .filter(|&i| record.is_char_boundary(i))
                .step_by(7)
            {
                check(&record[..cut])?;
            }
            checked += 1;
        }
        Ok(checked)
    }

    fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                files_under(&path, out);
            } else {
                out.push(path);
            }
        }
    }

    fn check_files(root: &Path) -> usize {
        let mut files = Vec::new();
        files_under(root, &mut files);
        files.sort();
        let mut checked = 0;
        for path in &files {
            let text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).to_string();
            checked += check_text(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        checked
    }

    #[test]
    fn no_fixture_record_or_cut_of_one_the_probe_consumes_is_skipped() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests");
        let checked = check_files(&root.join("fixtures"))
            + check_files(&root.join("scenarios"))
            + check_files(&root.join("demo"));
        assert!(checked > 100, "{checked} records: fixtures not found?");
    }

    /// The public samples beside the repository (or at `SNAPWATCH_CORPUS`), when present.
    #[test]
    fn no_corpus_record_the_probe_consumes_is_skipped() {
        let root = std::env::var_os("SNAPWATCH_CORPUS").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
            PathBuf::from,
        );
        if !root.is_dir() {
            eprintln!(
                "prefilter corpus test: {} not present; nothing to check",
                root.display()
            );
            return;
        }
        assert!(check_files(&root) > 0);
    }

    /// Consumed names of every cloud and a few unrelated ones, as a record could carry them.
    fn any_name() -> impl Strategy<Value = String> {
        let mut names: Vec<String> = aws::CONSUMED_EVENTS
            .iter()
            .map(|(_, n)| n.to_string())
            .collect();
        for suffix in gcp::CONSUMED_METHODS {
            names.push(suffix.to_string());
            names.push(format!("v1.{suffix}"));
            names.push(format!("beta.{suffix}"));
        }
        names.extend(azure::CONSUMED_OPERATIONS.iter().map(|s| s.to_string()));
        names.extend(
            [
                "DescribeSnapshots",
                "GetObject",
                "CreateSnapshotX",
                "v1.compute.regionDisks.get",
                "Microsoft.Storage/storageAccounts/listKeys/action",
                "microsoft.compute/disks/read",
                "",
            ]
            .map(String::from),
        );
        prop::sample::select(names)
    }

    /// `name` with some ASCII letters' case flipped (`flips` picks which).
    fn recase(name: &str, flips: u64) -> String {
        name.chars()
            .enumerate()
            .map(|(i, c)| match flips >> (i % 64) & 1 {
                1 if c.is_ascii_lowercase() => c.to_ascii_uppercase(),
                1 => c.to_ascii_lowercase(),
                _ => c,
            })
            .collect()
    }

    /// A JSON string literal of `text`, with the characters `escape` picks written as `\u`
    /// escapes and slashes optionally as `\/`.
    fn literal(text: &str, escape: u64, slash: bool) -> String {
        let mut out = String::from("\"");
        for (i, c) in text.chars().enumerate() {
            match c {
                '"' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                '/' if slash => out.push_str("\\/"),
                c if escape >> (i % 64) & 1 == 1 => {
                    out.push_str(&format!("\\u{:04x}", u32::from(c)));
                }
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    /// A record of one of the shapes the probe knows (or none), naming `name`.
    fn shaped(shape: usize, name: &str, noise: &str) -> String {
        match shape {
            0 => format!(
                r#"{{"eventVersion":"1.08","eventSource":"ec2.amazonaws.com","eventName":{name},"x":{noise}}}"#
            ),
            1 => format!(
                r#"{{"version":"0","detail-type":"AWS API Call via CloudTrail","detail":{{"eventName":{name},"n":{noise}}}}}"#
            ),
            2 => {
                format!(r#"{{"insertId":"a","protoPayload":{{"methodName":{name}}},"n":{noise}}}"#)
            }
            3 => format!(
                r#"{{"specversion":"1.0","data":{{"protoPayload":{{"request":{{"@type":{name}}}}}}},"n":{noise}}}"#
            ),
            4 => format!(r#"{{"time":"t","operationName":{name},"n":{noise}}}"#),
            5 => format!(r#"{{"operationName":{{"value":{name},"localizedValue":{noise}}}}}"#),
            6 => format!(r#"{{"eventType":"x","data":{{"operationName":{name}}},"n":{noise}}}"#),
            7 => format!(r#"{{"eventSource":"x","data":[null,{name}],"n":{noise}}}"#),
            8 => {
                format!(r#"{{"Records":[{{"eventVersion":"1","eventName":{name}}}],"n":{noise}}}"#)
            }
            9 => format!(r#"{{"eventSource":"x","n":{noise}}}"#),
            _ => format!(r#"{{"hello":{name},"n":{noise}}}"#),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        #[test]
        fn a_skipped_record_is_never_one_the_probe_consumes(
            shape in 0..11usize,
            name in any_name(),
            flips in prop_oneof![Just(0u64), any::<u64>()],
            escape in prop_oneof![4 => Just(0u64), 1 => any::<u64>()],
            slash in prop::bool::weighted(0.1),
            pad in prop::sample::select(vec!["", " ", "\t", "\r\n"]),
            noise in any_name(),
            cut in prop_oneof![3 => Just(None), 1 => any::<prop::sample::Index>().prop_map(Some)],
        ) {
            let name = literal(&format!("{pad}{}{pad}", recase(&name, flips)), escape, slash);
            let record = format!("{pad}{}{pad}", shaped(shape, &name, &literal(&noise, 0, false)));
            let record = match cut {
                Some(at) => {
                    let at = at.index(record.len());
                    (0..=at).rev().find(|&i| record.is_char_boundary(i)).map_or("", |i| &record[..i]).to_string()
                }
                None => record,
            };
            prop_assert_eq!(check(&record), Ok(()));
            prop_assert_eq!(same_events(&record), Ok(()));
        }
    }
}
