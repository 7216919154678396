//! Reading log inputs: files, directories (walked), stdin; gzip by magic bytes. The layouts
//! inside (JSON lines, arrays, documents, `Records` containers) are the core's splitter's
//! ([`snapwatch_core::split`]), which hands each record-sized JSON text to a [`UnitHandler`].

use flate2::read::MultiGzDecoder;
pub use snapwatch_core::split::{Limits, RecordLines, Rejection, UnitHandler};
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Large reads: the splitter keeps its own buffer of the same size; this one sniffs for gzip.
const READ_BUFFER: usize = 256 * 1024;

/// How inputs are found and read.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    pub limits: Limits,
    /// Read entries whose name starts with `.` (and `.git/`) during directory walks.
    pub include_hidden: bool,
}

/// Why a path met during a directory walk was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSkip {
    /// Its name starts with `.`.
    Hidden,
    /// A FIFO, socket or device: reading it could block forever.
    NotRegular(&'static str),
    /// A directory already walked (a symlink loop or a second link to it).
    Loop,
}

/// A [`UnitHandler`] that also hears of the paths a directory walk does not read.
pub trait PathHandler: UnitHandler {
    /// A path met during a walk and not read.
    fn skipped_path(&mut self, _path: &str, _why: PathSkip) {}
}

/// A rejection as the CLI reports it: the size limits name the flag that raises them.
pub fn reason(why: &Rejection) -> String {
    match why {
        Rejection::RecordTooLarge { limit } => {
            format!("record larger than the {limit}-byte limit (--max-record-bytes), skipped")
        }
        Rejection::DocumentTooLarge { limit } => format!(
            "document larger than the {limit}-byte limit (--max-document-bytes); rest of this input skipped"
        ),
        other => other.to_string(),
    }
}

/// Fails fast, before any output, when a PATH does not exist or cannot be read.
pub fn check_readable(path: &Path) -> Result<(), String> {
    if path.as_os_str() == "-" {
        return Ok(());
    }
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.is_file() {
        File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    } else if meta.is_dir() {
        std::fs::read_dir(path)
            .map_err(|e| format!("cannot read directory {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Reads `path` (file, directory or `-`). Returns the paths that could not be read; everything
/// else is handed to `handler`.
pub fn read_path(
    path: &Path,
    options: &ReadOptions,
    handler: &mut impl PathHandler,
) -> Vec<(String, io::Error)> {
    let mut failures = Vec::new();
    if path.as_os_str() == "-" {
        let stdin = io::stdin();
        if let Err(e) = read_stream("-", stdin.lock(), &options.limits, handler) {
            failures.push(("-".to_string(), e));
        }
        return failures;
    }
    let mut walk = Walk {
        options,
        walked_dirs: HashSet::new(),
        files: Vec::new(),
        failures: Vec::new(),
    };
    walk.visit(path, true, handler);
    let Walk {
        files,
        failures: mut walk_failures,
        ..
    } = walk;
    failures.append(&mut walk_failures);
    for file in files {
        let name = file.display().to_string();
        let result =
            File::open(&file).and_then(|f| read_stream(&name, f, &options.limits, handler));
        if let Err(e) = result {
            failures.push((name, e));
        }
    }
    failures
}

struct Walk<'o> {
    options: &'o ReadOptions,
    /// (device, inode) of every directory entered, so a symlink loop is entered once.
    walked_dirs: HashSet<(u64, u64)>,
    files: Vec<PathBuf>,
    failures: Vec<(String, io::Error)>,
}

impl Walk<'_> {
    fn visit(&mut self, path: &Path, named: bool, handler: &mut impl PathHandler) {
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) => return self.failures.push((path.display().to_string(), e)),
        };
        if meta.is_dir() {
            if let Some(id) = dir_id(&meta) {
                if !self.walked_dirs.insert(id) {
                    return handler.skipped_path(&path.display().to_string(), PathSkip::Loop);
                }
            }
            let entries = match std::fs::read_dir(path) {
                Ok(entries) => entries,
                Err(e) => return self.failures.push((path.display().to_string(), e)),
            };
            let mut children: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
            // Sorted so that repeated scans report in the same order.
            children.sort();
            for child in children {
                let hidden = child
                    .file_name()
                    .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."));
                if hidden && !self.options.include_hidden {
                    handler.skipped_path(&child.display().to_string(), PathSkip::Hidden);
                    continue;
                }
                self.visit(&child, false, handler);
            }
        } else if meta.is_file() || named {
            // A FIFO named on the command line is read (process substitution); met in a walk,
            // it could block forever.
            self.files.push(path.to_path_buf());
        } else {
            handler.skipped_path(
                &path.display().to_string(),
                PathSkip::NotRegular(special_kind(&meta)),
            );
        }
    }
}

#[cfg(unix)]
fn dir_id(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn dir_id(_meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

#[cfg(unix)]
fn special_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() || t.is_char_device() {
        "device"
    } else {
        "not a regular file"
    }
}

#[cfg(not(unix))]
fn special_kind(_meta: &std::fs::Metadata) -> &'static str {
    "not a regular file"
}

/// Parses a byte size: `1048576`, `64K`, `64M`, `4G` (binary multiples, optional `iB`/`B`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (digits, shift) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 10),
        Some((i, 'M' | 'm')) => (&t[..i], 20),
        Some((i, 'G' | 'g')) => (&t[..i], 30),
        _ => (t, 0),
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("not a size: {text:?} (bytes, or a number with K, M or G)"))?;
    n.checked_mul(1u64 << shift)
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("size out of range: {text:?}"))
}

/// Reads one input (gzip detected by magic bytes) and hands its records to `handler`.
pub fn read_stream(
    source: &str,
    raw: impl Read,
    limits: &Limits,
    handler: &mut impl UnitHandler,
) -> io::Result<()> {
    let mut reader = BufReader::with_capacity(READ_BUFFER, raw);
    let gzip = reader.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    if gzip {
        snapwatch_core::split::split(source, MultiGzDecoder::new(reader), limits, handler)
    } else {
        snapwatch_core::split::split(source, reader, limits, handler)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[derive(Default)]
    struct Collect {
        units: Vec<(String, usize)>,
        elements: Vec<(String, usize)>,
        rejects: Vec<(usize, String)>,
        skipped: Vec<(String, PathSkip)>,
    }

    impl UnitHandler for Collect {
        fn unit(&mut self, text: &str, _source: &str, line: usize) {
            self.units.push((text.to_string(), line));
        }
        fn element(&mut self, text: &str, _source: &str, line: usize) {
            self.elements.push((text.to_string(), line));
        }
        fn reject(&mut self, _source: &str, line: usize, why: Rejection) {
            self.rejects.push((line, reason(&why)));
        }
    }

    impl PathHandler for Collect {
        fn skipped_path(&mut self, path: &str, why: PathSkip) {
            self.skipped.push((path.to_string(), why));
        }
    }

    fn read_with(bytes: impl Read, limits: Limits) -> Collect {
        let mut c = Collect::default();
        read_stream("t", bytes, &limits, &mut c).unwrap();
        c
    }

    #[test]
    fn gzip_is_detected_by_magic_bytes() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"{\"Records\":[{\"a\":1}]}").unwrap();
        let c = read_with(&gz.finish().unwrap()[..], Limits::default());
        assert_eq!(c.elements.len(), 1);
        let c = read_with(&b"{\"Records\":[{\"a\":1}]}"[..], Limits::default());
        assert_eq!(c.elements.len(), 1, "and plain text is read as it is");
    }

    #[test]
    fn size_rejections_name_the_flag_that_raises_the_limit() {
        let limits = Limits {
            max_record_bytes: 16,
            max_document_bytes: 64,
        };
        let c = read_with(&b"{\"a\":\"0123456789abcdef\"}\n{\"b\":1}\n"[..], limits);
        assert_eq!(c.units.len(), 1);
        assert_eq!(
            c.rejects,
            vec![(
                1,
                "record larger than the 16-byte limit (--max-record-bytes), skipped".to_string()
            )]
        );
        assert_eq!(
            reason(&Rejection::DocumentTooLarge { limit: 64 }),
            "document larger than the 64-byte limit (--max-document-bytes); rest of this input skipped"
        );
    }

    #[test]
    fn parse_size_takes_binary_suffixes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("16k"), Ok(16 << 10));
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn walks_skip_loops_hidden_entries_and_fifos() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a.json"), b"{\"a\":1}\n").unwrap();
        std::os::unix::fs::symlink(".", root.join("me")).unwrap();
        std::os::unix::fs::symlink(".", root.join("me2")).unwrap();
        std::fs::create_dir(root.join(".git")).unwrap();
        std::fs::write(root.join(".git/config"), b"[core]\n").unwrap();
        let fifo = root.join("pipe");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let mut c = Collect::default();
        let failures = read_path(root, &ReadOptions::default(), &mut c);
        assert!(failures.is_empty());
        assert_eq!(c.units.len(), 1, "the file is read once");
        assert!(c.rejects.is_empty(), "{:?}", c.rejects);
        let kinds: Vec<&PathSkip> = c.skipped.iter().map(|s| &s.1).collect();
        assert_eq!(
            kinds,
            vec![
                &PathSkip::Hidden,
                &PathSkip::Loop,
                &PathSkip::Loop,
                &PathSkip::NotRegular("FIFO")
            ]
        );
        let mut c = Collect::default();
        let options = ReadOptions {
            include_hidden: true,
            ..ReadOptions::default()
        };
        read_path(root, &options, &mut c);
        assert_eq!(c.rejects.len(), 1, "the .git file is read and rejected");
    }
}
