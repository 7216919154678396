//! Reading log inputs: files, directories (walked), stdin; gzip by magic bytes; and the three
//! layouts exported logs come in: JSON lines, one JSON array, or one (pretty-printed) document or
//! several concatenated. Hands each record-sized JSON text to a [`UnitHandler`] with its location.
//!
//! Inputs are split in one streaming pass that tracks nesting, strings and line numbers itself:
//! elements of a top-level array and of a `{"Records": [...]}` / `{"records": [...]}` container
//! are handed over one at a time, so memory follows the largest record, not the input, and line
//! numbers are counted once, never by rescanning.

use flate2::read::MultiGzDecoder;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

const READ_BUFFER: usize = 256 * 1024;
/// Deeper nesting than any cloud writes (serde_json itself stops at 128); bounds the bracket stack
/// kept while skipping a hostile value.
const MAX_DEPTH: usize = 1024;

/// Size limits on what is held in memory or read as one document.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// One record: a JSON-lines line, an array or container element, or a document that is not a
    /// container. Larger ones are rejected with their location and skipped.
    pub max_record_bytes: usize,
    /// One top-level document (a whole array or container file is streamed, so this bounds time,
    /// not memory). Past it the rest of the input is rejected.
    pub max_document_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        // A CloudTrail record is at most a few hundred KB; an S3 log file tens of MB.
        Limits {
            max_record_bytes: 64 << 20,
            max_document_bytes: 4 << 30,
        }
    }
}

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

/// Receives record-sized JSON texts and input-level problems.
pub trait UnitHandler {
    /// One top-level JSON text (a line, a top-level array element, a whole document); `line` is
    /// the 1-based line where it starts.
    fn unit(&mut self, text: &str, source: &str, line: usize);
    /// One element of a `Records`/`records` container: a record, not a container itself.
    fn element(&mut self, text: &str, source: &str, line: usize) {
        self.unit(text, source, line)
    }
    /// Something in the input that is not a usable JSON text.
    fn reject(&mut self, source: &str, line: usize, reason: String);
    /// A path met during a walk and not read.
    fn skipped_path(&mut self, _path: &str, _why: PathSkip) {}
    /// Bytes consumed so far from the current input, for progress.
    fn progress(&mut self, _bytes: u64) {}
}

/// Lines of the records inside one unit, counted forward once: records come in text order.
pub struct RecordLines<'u> {
    unit: &'u str,
    line: usize,
    counted_to: usize,
}

impl<'u> RecordLines<'u> {
    /// `unit` starts on `line`.
    pub fn new(unit: &'u str, line: usize) -> Self {
        RecordLines {
            unit,
            line,
            counted_to: 0,
        }
    }

    /// The line where `part`, a slice of the unit, starts.
    pub fn line_of(&mut self, part: &str) -> usize {
        let offset = (part.as_ptr() as usize)
            .saturating_sub(self.unit.as_ptr() as usize)
            .min(self.unit.len());
        let bytes = self.unit.as_bytes();
        if offset < self.counted_to {
            // Out of order (not expected): count back rather than go wrong.
            self.line -= memchr::memchr_iter(b'\n', &bytes[offset..self.counted_to]).count();
        } else {
            self.line += memchr::memchr_iter(b'\n', &bytes[self.counted_to..offset]).count();
        }
        self.counted_to = offset;
        self.line
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
    handler: &mut impl UnitHandler,
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
    fn visit(&mut self, path: &Path, named: bool, handler: &mut impl UnitHandler) {
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
        read_decoded(source, MultiGzDecoder::new(reader), limits, handler)
    } else {
        read_decoded(source, reader, limits, handler)
    }
}

fn read_decoded(
    source: &str,
    reader: impl Read,
    limits: &Limits,
    handler: &mut impl UnitHandler,
) -> io::Result<()> {
    let mut split = Splitter {
        src: Src::new(reader),
        source,
        handler,
        limits,
        layout: Layout::Unknown,
        cap: Vec::new(),
        capturing: false,
        oversized: false,
        unit_line: None,
        stack: Vec::new(),
        doc_start: None,
    };
    let head = split.src.ensure(4)?;
    if head.starts_with(&[0xef, 0xbb, 0xbf]) {
        // Windows and PowerShell exports start with a UTF-8 byte-order mark.
        split.src.pos += 3;
    } else if let Some(order) = utf16(head) {
        split.handler.reject(
            source,
            1,
            format!("UTF-16 ({order}) text: snapwatch reads UTF-8; convert it first (iconv -f UTF-16 -t UTF-8)"),
        );
        return Ok(());
    }
    let result = split.run();
    let bytes = split.src.offset();
    split.handler.progress(bytes);
    result
}

fn utf16(head: &[u8]) -> Option<&'static str> {
    match head {
        [0xff, 0xfe, ..] => Some("little-endian"),
        [0xfe, 0xff, ..] => Some("big-endian"),
        [a, 0, ..] if *a != 0 => Some("little-endian"),
        [0, b, ..] if *b != 0 => Some("big-endian"),
        _ => None,
    }
}

/// A byte source with its own buffer, position, byte offset and line count.
struct Src<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    /// 1-based line of `buf[pos]`.
    line: usize,
}

impl<R: Read> Src<R> {
    fn new(inner: R) -> Self {
        Src {
            inner,
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            pos: 0,
            end: 0,
            base: 0,
            line: 1,
        }
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Makes at least one unread byte available; false at end of input.
    fn fill(&mut self) -> io::Result<bool> {
        if self.pos < self.end {
            return Ok(true);
        }
        self.base += self.end as u64;
        self.pos = 0;
        self.end = 0;
        loop {
            match self.inner.read(&mut self.buf) {
                Ok(n) => {
                    self.end = n;
                    return Ok(n > 0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves the unread bytes to the front and reads once more; the number of bytes read.
    fn read_more(&mut self) -> io::Result<usize> {
        self.buf.copy_within(self.pos..self.end, 0);
        self.base += self.pos as u64;
        self.end -= self.pos;
        self.pos = 0;
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(k) => {
                    self.end += k;
                    return Ok(k);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The next `n` bytes or fewer at end of input, without consuming them.
    fn ensure(&mut self, n: usize) -> io::Result<&[u8]> {
        if self.end - self.pos < n {
            self.buf.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
            while self.end < n {
                match self.inner.read(&mut self.buf[self.end..]) {
                    Ok(0) => break,
                    Ok(k) => self.end += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(&self.buf[self.pos..self.end])
    }
}

/// How the input is laid out, decided by its first value: one that ends on the line it started
/// on means JSON lines, where a broken line is rejected alone and the next line starts afresh.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    Unknown,
    Lines,
    Documents,
}

enum Stop {
    Io(io::Error),
    Syntax { line: usize, message: String },
    DocumentTooLarge,
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop::Io(e)
    }
}

#[derive(Clone, Copy)]
enum Kind {
    /// A top-level text: may itself be a container.
    Unit,
    /// An element of a `Records`/`records` container.
    Element,
}

/// Bytes that end a run of plain bytes inside a nested value.
const fn special_table() -> [bool; 256] {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'{' as usize] = true;
    t[b'[' as usize] = true;
    t[b'}' as usize] = true;
    t[b']' as usize] = true;
    t[b'\n' as usize] = true;
    t
}
const SPECIAL: [bool; 256] = special_table();

fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t' | b'\r' | b'\n' | b',' | b':' | b']' | b'}' | b'[' | b'{' | b'"'
    )
}

fn shown(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", char::from(b))
    } else {
        format!("byte 0x{b:02x}")
    }
}

struct Splitter<'a, R, H> {
    src: Src<R>,
    source: &'a str,
    handler: &'a mut H,
    limits: &'a Limits,
    layout: Layout,
    /// The record being read, while `capturing`.
    cap: Vec<u8>,
    capturing: bool,
    /// The record being read outgrew `max_record_bytes`; it is skipped, then rejected.
    oversized: bool,
    /// Line where the record being read started.
    unit_line: Option<usize>,
    /// Closing brackets expected inside the value being read.
    stack: Vec<u8>,
    /// Offset where the current top-level document started.
    doc_start: Option<u64>,
}

impl<R: Read, H: UnitHandler> Splitter<'_, R, H> {
    fn run(&mut self) -> io::Result<()> {
        self.skip_blank()?;
        let Some(first) = self.peek()? else {
            return Ok(()); // empty input: nothing to report
        };
        if first != b'{' && first != b'[' {
            let line = self.src.line;
            self.handler.reject(
                self.source,
                line,
                format!(
                    "not JSON: input starts with {}, expected '{{' or '['",
                    shown(first)
                ),
            );
            return Ok(());
        }
        loop {
            self.skip_blank()?;
            let Some(first) = self.peek()? else {
                return Ok(());
            };
            if self.layout == Layout::Lines {
                if let Some(len) = self.buffered_line()? {
                    self.whole_line(len);
                    continue;
                }
            }
            let start_line = self.src.line;
            self.doc_start = Some(self.src.offset());
            let result = match first {
                b'[' => self.array(Kind::Unit),
                b'{' => self.top_object(),
                other => Err(Stop::Syntax {
                    line: start_line,
                    message: format!("expected '{{' or '[', found {}", shown(other)),
                }),
            };
            self.doc_start = None;
            let stop = match result {
                Ok(()) => {
                    if self.layout == Layout::Unknown {
                        self.layout = if self.src.line == start_line {
                            Layout::Lines
                        } else {
                            Layout::Documents
                        };
                    }
                    continue;
                }
                Err(Stop::Io(e)) => return Err(e),
                Err(stop) => stop,
            };
            self.reject_oversized();
            self.capturing = false;
            self.unit_line = None;
            self.cap.clear();
            self.stack.clear();
            match stop {
                Stop::Syntax { line, message } if self.layout == Layout::Lines => {
                    self.handler
                        .reject(self.source, line, format!("invalid JSON: {message}"));
                    self.skip_line()?;
                }
                Stop::Syntax { line, message } => {
                    let offset = self.src.offset();
                    self.handler.reject(
                        self.source,
                        line,
                        format!(
                            "invalid JSON at byte {offset}: {message}; rest of this input skipped"
                        ),
                    );
                    return Ok(());
                }
                _ => {
                    let limit = self.limits.max_document_bytes;
                    self.handler.reject(
                        self.source,
                        start_line,
                        format!("document larger than the {limit}-byte limit (--max-document-bytes); rest of this input skipped"),
                    );
                    return Ok(());
                }
            }
        }
    }

    /// In JSON lines, the length of the next line when it fits in the read buffer (the common
    /// case); a longer line is streamed like any document.
    fn buffered_line(&mut self) -> io::Result<Option<usize>> {
        loop {
            let slice = &self.src.buf[self.src.pos..self.src.end];
            if let Some(i) = memchr::memchr(b'\n', slice) {
                return Ok(Some(i));
            }
            if self.src.pos == 0 && self.src.end == self.src.buf.len() {
                return Ok(None);
            }
            if self.src.read_more()? == 0 {
                return Ok(Some(self.src.end - self.src.pos));
            }
        }
    }

    /// Hands one buffered JSON line to the handler as it is: serde judges it, as a record.
    fn whole_line(&mut self, len: usize) {
        let line = self.src.line;
        let (pos, end) = (self.src.pos, self.src.pos + len);
        if len > self.limits.max_record_bytes {
            self.oversized = true;
            self.unit_line = Some(line);
            self.reject_oversized();
            self.unit_line = None;
        } else {
            match std::str::from_utf8(&self.src.buf[pos..end]) {
                Ok(text) => {
                    let text = text.trim();
                    if !text.is_empty() {
                        self.handler.unit(text, self.source, line);
                    }
                }
                Err(e) => self
                    .handler
                    .reject(self.source, line, format!("not UTF-8 text: {e}")),
            }
        }
        self.src.pos = end;
        if self.src.pos < self.src.end {
            self.src.pos += 1; // the newline
            self.src.line += 1;
        }
    }

    /// Whitespace between top-level documents.
    fn skip_blank(&mut self) -> io::Result<()> {
        while self.src.fill()? {
            let slice = &self.src.buf[self.src.pos..self.src.end];
            let run = slice
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(slice.len());
            self.src.line += memchr::memchr_iter(b'\n', &slice[..run]).count();
            self.src.pos += run;
            if self.src.pos < self.src.end {
                break;
            }
        }
        Ok(())
    }

    /// Consumes the rest of the current line, newline included (JSON lines after an error).
    fn skip_line(&mut self) -> io::Result<()> {
        while self.src.fill()? {
            let slice = &self.src.buf[self.src.pos..self.src.end];
            match memchr::memchr(b'\n', slice) {
                Some(i) => {
                    self.src.pos += i + 1;
                    self.src.line += 1;
                    return Ok(());
                }
                None => self.src.pos = self.src.end,
            }
        }
        Ok(())
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        Ok(if self.src.fill()? {
            Some(self.src.buf[self.src.pos])
        } else {
            None
        })
    }

    /// Makes a byte available inside a document; checks the document limit on every refill.
    fn more(&mut self) -> Result<bool, Stop> {
        if self.src.pos < self.src.end {
            return Ok(true);
        }
        if let Some(start) = self.doc_start {
            if self.src.offset() - start > self.limits.max_document_bytes {
                return Err(Stop::DocumentTooLarge);
            }
        }
        Ok(self.src.fill()?)
    }

    /// The next byte inside a value; the end of input there is a truncated document.
    fn peek_in_value(&mut self) -> Result<u8, Stop> {
        if self.more()? {
            Ok(self.src.buf[self.src.pos])
        } else {
            let line = self.unit_line.unwrap_or(self.src.line);
            let offset = self.src.offset();
            Err(Stop::Syntax {
                line,
                message: format!(
                    "the input ends (byte {offset}, line {}) inside this value: truncated?",
                    self.src.line
                ),
            })
        }
    }

    fn syntax(&self, message: String) -> Stop {
        Stop::Syntax {
            line: self.src.line,
            message,
        }
    }

    /// Keeps `buf[from..to]` in the record being read, unless it outgrew its limit.
    fn keep(&mut self, from: usize, to: usize) {
        if !self.capturing {
            return;
        }
        if self.cap.len() + (to - from) > self.limits.max_record_bytes {
            self.capturing = false;
            self.oversized = true;
            self.cap = Vec::new();
        } else {
            self.cap.extend_from_slice(&self.src.buf[from..to]);
        }
    }

    /// Consumes the (available) byte at the current position.
    fn bump(&mut self) {
        let pos = self.src.pos;
        self.keep(pos, pos + 1);
        if self.src.buf[pos] == b'\n' {
            self.src.line += 1;
        }
        self.src.pos += 1;
    }

    fn expect(&mut self, want: u8, what: &str) -> Result<(), Stop> {
        let b = self.peek_in_value()?;
        if b != want {
            return Err(self.syntax(format!("expected {what}, found {}", shown(b))));
        }
        self.bump();
        Ok(())
    }

    /// Whitespace inside a document; in JSON lines a value must end on its line.
    fn ws(&mut self) -> Result<(), Stop> {
        loop {
            if !self.more()? {
                return Ok(());
            }
            let (pos, end) = (self.src.pos, self.src.end);
            let slice = &self.src.buf[pos..end];
            let run = slice
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(slice.len());
            let newline = memchr::memchr(b'\n', &slice[..run]);
            if let Some(i) = newline {
                if self.layout == Layout::Lines {
                    self.keep(pos, pos + i);
                    self.src.pos += i;
                    return Err(self.line_ended());
                }
            }
            self.src.line += memchr::memchr_iter(b'\n', &slice[..run]).count();
            self.keep(pos, pos + run);
            self.src.pos += run;
            if self.src.pos < end {
                return Ok(());
            }
        }
    }

    fn line_ended(&self) -> Stop {
        self.syntax("the line ends before the value does".into())
    }

    fn begin_unit(&mut self) {
        self.cap.clear();
        self.capturing = true;
        self.oversized = false;
        self.unit_line = Some(self.src.line);
    }

    fn reject_oversized(&mut self) {
        if self.oversized {
            self.oversized = false;
            let line = self.unit_line.unwrap_or(self.src.line);
            let limit = self.limits.max_record_bytes;
            self.handler.reject(
                self.source,
                line,
                format!("record larger than the {limit}-byte limit (--max-record-bytes), skipped"),
            );
        }
    }

    /// Hands the record just read to the handler (or rejects it).
    fn emit(&mut self, kind: Kind) {
        self.capturing = false;
        let line = self.unit_line.take().unwrap_or(self.src.line);
        if self.oversized {
            self.unit_line = Some(line);
            self.reject_oversized();
            self.unit_line = None;
        } else {
            match std::str::from_utf8(&self.cap) {
                Ok(text) => match kind {
                    Kind::Unit => self.handler.unit(text, self.source, line),
                    Kind::Element => self.handler.element(text, self.source, line),
                },
                Err(e) => self
                    .handler
                    .reject(self.source, line, format!("not UTF-8 text: {e}")),
            }
        }
        self.cap.clear();
        if self.cap.capacity() > 4 * READ_BUFFER {
            self.cap.shrink_to(READ_BUFFER);
        }
    }

    /// A top-level object: a `Records`/`records` container is streamed element by element; any
    /// other object is one record.
    fn top_object(&mut self) -> Result<(), Stop> {
        self.begin_unit();
        self.bump(); // '{'
        let mut container = false;
        self.ws()?;
        if self.peek_in_value()? == b'}' {
            self.bump();
        } else {
            loop {
                self.ws()?;
                let b = self.peek_in_value()?;
                if b != b'"' {
                    return Err(self.syntax(format!("expected a key, found {}", shown(b))));
                }
                let records_key = self.string(true)?;
                self.ws()?;
                self.expect(b':', "':'")?;
                self.ws()?;
                if records_key && self.peek_in_value()? == b'[' {
                    // Fields around the records are not evidence; the probe ignores them too.
                    container = true;
                    self.capturing = false;
                    self.oversized = false;
                    self.cap.clear();
                    self.unit_line = None;
                    self.array(Kind::Element)?;
                } else {
                    self.value()?;
                }
                self.ws()?;
                match self.peek_in_value()? {
                    b',' => self.bump(),
                    b'}' => {
                        self.bump();
                        break;
                    }
                    other => {
                        return Err(
                            self.syntax(format!("expected ',' or '}}', found {}", shown(other)))
                        )
                    }
                }
            }
        }
        if container {
            self.unit_line = None;
        } else {
            self.emit(Kind::Unit);
        }
        Ok(())
    }

    /// An array whose elements are handed over one by one.
    fn array(&mut self, kind: Kind) -> Result<(), Stop> {
        self.bump(); // '['
        self.ws()?;
        if self.peek_in_value()? == b']' {
            self.bump();
            return Ok(());
        }
        loop {
            self.ws()?;
            self.begin_unit();
            self.value()?;
            self.emit(kind);
            self.ws()?;
            match self.peek_in_value()? {
                b',' => self.bump(),
                b']' => {
                    self.bump();
                    return Ok(());
                }
                other => {
                    return Err(self.syntax(format!("expected ',' or ']', found {}", shown(other))))
                }
            }
        }
    }

    /// Any JSON value, bracket-balanced and string-aware; its details are left to serde.
    fn value(&mut self) -> Result<(), Stop> {
        match self.peek_in_value()? {
            b'{' | b'[' => self.nested(),
            b'"' => self.string(false).map(|_| ()),
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => self.scalar(),
            other => Err(self.syntax(format!("expected a value, found {}", shown(other)))),
        }
    }

    fn scalar(&mut self) -> Result<(), Stop> {
        while self.more()? {
            let (pos, end) = (self.src.pos, self.src.end);
            let run = self.src.buf[pos..end]
                .iter()
                .position(|&b| is_delimiter(b))
                .unwrap_or(end - pos);
            self.keep(pos, pos + run);
            self.src.pos += run;
            if self.src.pos < end {
                break;
            }
        }
        Ok(())
    }

    /// A nested object or array, scanned a buffer at a time in one tight loop: this is where an
    /// array or `Records` file spends its time.
    fn nested(&mut self) -> Result<(), Stop> {
        self.stack.clear();
        let mut in_string = false;
        let mut escaped = false;
        loop {
            self.peek_in_value()?;
            let (pos, end) = (self.src.pos, self.src.end);
            let slice = &self.src.buf[pos..end];
            let mut i = 0;
            let mut outcome: Option<Result<(), String>> = None;
            let mut newlines = 0;
            while i < slice.len() {
                if in_string {
                    if escaped {
                        escaped = false;
                        if slice[i] == b'\n' {
                            if self.layout == Layout::Lines {
                                outcome = Some(Err(String::new()));
                                break;
                            }
                            newlines += 1;
                        }
                        i += 1;
                        continue;
                    }
                    match memchr::memchr3(b'"', b'\\', b'\n', &slice[i..]) {
                        None => i = slice.len(),
                        Some(k) => {
                            i += k;
                            match slice[i] {
                                b'"' => in_string = false,
                                b'\\' => escaped = true,
                                _ => {
                                    // A raw newline: invalid in a string, left to serde unless it
                                    // ends a JSON line.
                                    if self.layout == Layout::Lines {
                                        outcome = Some(Err(String::new()));
                                        break;
                                    }
                                    newlines += 1;
                                }
                            }
                            i += 1;
                        }
                    }
                    continue;
                }
                let b = slice[i];
                if !SPECIAL[usize::from(b)] {
                    i += 1;
                    continue;
                }
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => {
                        if self.stack.len() >= MAX_DEPTH {
                            outcome = Some(Err(format!("nested deeper than {MAX_DEPTH} levels")));
                            break;
                        }
                        self.stack.push(if b == b'{' { b'}' } else { b']' });
                    }
                    b'}' | b']' => {
                        if self.stack.pop() != Some(b) {
                            outcome = Some(Err(format!("unexpected {}", shown(b))));
                            break;
                        }
                        if self.stack.is_empty() {
                            i += 1;
                            outcome = Some(Ok(()));
                            break;
                        }
                    }
                    _ => {
                        // b'\n'
                        if self.layout == Layout::Lines {
                            outcome = Some(Err(String::new()));
                            break;
                        }
                        newlines += 1;
                    }
                }
                i += 1;
            }
            self.keep(pos, pos + i);
            self.src.pos += i;
            self.src.line += newlines;
            match outcome {
                None => {}
                Some(Ok(())) => return Ok(()),
                Some(Err(message)) if message.is_empty() => return Err(self.line_ended()),
                Some(Err(message)) => return Err(self.syntax(message)),
            }
        }
    }

    /// A string, escapes included. With `key`, says whether it is `"Records"` or `"records"`.
    fn string(&mut self, key: bool) -> Result<bool, Stop> {
        self.bump(); // '"'
        let mut name = [0u8; 8];
        let mut len = 0usize;
        loop {
            self.peek_in_value()?;
            let (pos, end) = (self.src.pos, self.src.end);
            let slice = &self.src.buf[pos..end];
            let stop = memchr::memchr3(b'"', b'\\', b'\n', slice);
            let run = stop.unwrap_or(slice.len());
            if key {
                for &b in &slice[..run] {
                    if len < name.len() {
                        name[len] = b;
                    }
                    len += 1;
                }
            }
            self.keep(pos, pos + run);
            self.src.pos += run;
            if stop.is_none() {
                continue;
            }
            match self.src.buf[self.src.pos] {
                b'"' => {
                    self.bump();
                    let name = &name[..len.min(name.len())];
                    return Ok(key && len == 7 && (name == b"Records" || name == b"records"));
                }
                b'\\' => {
                    self.bump();
                    let escaped = self.peek_in_value()?;
                    if escaped == b'\n' && self.layout == Layout::Lines {
                        return Err(self.line_ended());
                    }
                    self.bump();
                    len = usize::MAX / 2; // an escaped key is never the container key
                }
                _ => {
                    // A raw newline: invalid in a string, left to serde unless it ends a line.
                    if self.layout == Layout::Lines {
                        return Err(self.line_ended());
                    }
                    self.bump();
                }
            }
        }
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
        fn reject(&mut self, _source: &str, line: usize, reason: String) {
            self.rejects.push((line, reason));
        }
        fn skipped_path(&mut self, path: &str, why: PathSkip) {
            self.skipped.push((path.to_string(), why));
        }
    }

    fn read_with(bytes: impl Read, limits: Limits) -> Collect {
        let mut c = Collect::default();
        read_stream("t", bytes, &limits, &mut c).unwrap();
        c
    }

    fn read(bytes: &[u8]) -> Collect {
        read_with(bytes, Limits::default())
    }

    #[test]
    fn json_lines_with_a_bad_line_keep_the_others() {
        let c = read(b"{\"a\":1}\n\n{\"b\":\n{\"c\":3}\r\n");
        assert_eq!(
            c.units,
            vec![
                ("{\"a\":1}".into(), 1),
                ("{\"b\":".into(), 3),
                ("{\"c\":3}".into(), 4)
            ]
        );
        assert!(
            c.rejects.is_empty(),
            "bad lines are rejected later, by the record parser"
        );
        // A line longer than the read buffer is streamed, and still rejected alone.
        let long = format!(
            "{{\"a\":1}}\n{{\"b\":\"{}\",\n{{\"c\":3}}\n",
            "x".repeat(READ_BUFFER * 2)
        );
        let c = read(long.as_bytes());
        assert_eq!(
            c.units,
            vec![("{\"a\":1}".into(), 1), ("{\"c\":3}".into(), 3)]
        );
        assert_eq!(c.rejects.len(), 1);
        assert_eq!(c.rejects[0].0, 2);
        assert!(c.rejects[0].1.starts_with("invalid JSON"));
    }

    #[test]
    fn arrays_and_pretty_documents_report_element_lines() {
        let c = read(b"\n[\n  {\"a\": 1},\n  {\"b\": 2}\n]\n");
        assert_eq!(c.units.iter().map(|u| u.1).collect::<Vec<_>>(), vec![3, 4]);
        let c = read(b"{\n \"Records\": [\n  {\"a\": 1}\n ]\n}\n{\n \"x\": 2\n}\n");
        assert_eq!(c.elements, vec![("{\"a\": 1}".into(), 3)]);
        assert_eq!(c.units, vec![("{\n \"x\": 2\n}".into(), 6)]);
    }

    #[test]
    fn broken_documents_are_rejected_with_their_line() {
        let c = read(b"{\n  \"a\": 1,\n  // comment\n}\n");
        assert!(c.units.is_empty());
        assert_eq!(c.rejects.len(), 1);
        assert_eq!(c.rejects[0].0, 3, "{:?}", c.rejects);
        let c = read(b"not json at all\n");
        assert_eq!(c.rejects.len(), 1);
        assert!(c.rejects[0].1.contains("not JSON"));
        let c = read(b"[{\"a\":1},]");
        assert_eq!(c.rejects.len(), 1);
    }

    #[test]
    fn gzip_is_detected_by_magic_bytes() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"{\"Records\":[{\"a\":1}]}").unwrap();
        let c = read(&gz.finish().unwrap());
        assert_eq!(c.elements.len(), 1);
    }

    /// `prefix`, then `len` bytes of `fill`, produced on the fly.
    struct Generated {
        prefix: Vec<u8>,
        fill: u8,
        left: u64,
    }

    impl Read for Generated {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if !self.prefix.is_empty() {
                let n = self.prefix.len().min(buf.len());
                buf[..n].copy_from_slice(&self.prefix[..n]);
                self.prefix.drain(..n);
                return Ok(n);
            }
            let n = (self.left.min(buf.len() as u64)) as usize;
            buf[..n].fill(self.fill);
            self.left -= n as u64;
            Ok(n)
        }
    }

    #[test]
    fn an_endless_value_is_rejected_at_the_record_limit_without_holding_it() {
        let limits = Limits {
            max_record_bytes: 1 << 20,
            max_document_bytes: 1 << 40,
        };
        // `{"a":` and 64 MiB of spaces, gzip-compressed on the fly (the shape).
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::copy(
            &mut Generated {
                prefix: b"{\"a\":".to_vec(),
                fill: b' ',
                left: 64 << 20,
            },
            &mut gz,
        )
        .unwrap();
        let c = read_with(&gz.finish().unwrap()[..], limits);
        assert!(c.units.is_empty());
        assert!(
            c.rejects
                .iter()
                .any(|(line, r)| *line == 1 && r.contains("1048576-byte limit")),
            "{:?}",
            c.rejects
        );
        // An oversized element is skipped and the next one still read.
        let big = format!("[{{\"a\":\"{}\"}},\n{{\"b\":1}}]", "x".repeat(2 << 20));
        let c = read_with(big.as_bytes(), limits);
        assert_eq!(c.units, vec![("{\"b\":1}".into(), 2)]);
        assert_eq!(c.rejects.len(), 1);
        assert!(c.rejects[0].1.contains("--max-record-bytes"));
        // The same in JSON lines.
        let lines = format!(
            "{{\"a\":1}}\n{{\"a\":\"{}\"}}\n{{\"b\":1}}\n",
            "x".repeat(2 << 20)
        );
        let c = read_with(lines.as_bytes(), limits);
        assert_eq!(c.units.len(), 2);
        assert_eq!(c.rejects[0].0, 2);
        // And a document limit stops an endless container.
        let limits = Limits {
            max_record_bytes: 1 << 20,
            max_document_bytes: 8 << 20,
        };
        let c = read_with(
            Generated {
                prefix: b"{\"Records\":[".to_vec(),
                fill: b' ',
                left: 64 << 20,
            },
            limits,
        );
        assert!(
            c.rejects[0].1.contains("--max-document-bytes"),
            "{:?}",
            c.rejects
        );
    }

    /// Issue 16 item 4: line numbers in arrays and concatenated documents were found by
    /// rescanning the whole text for every element (quadratic). Now each element is handed over
    /// alone, as it is read, with its line counted on the way: the text handed over adds up to
    /// no more than the input, whatever the element count. (Speed itself is `make bench`'s.)
    #[test]
    fn array_elements_are_handed_over_alone_with_counted_lines() {
        let n = 20_000;
        let mut bytes = b"[\n".to_vec();
        for i in 0..n {
            bytes.extend_from_slice(format!("{{\"a\":{i}}}").as_bytes());
            bytes.extend_from_slice(if i + 1 < n { b",\n" } else { b"\n" });
        }
        bytes.extend_from_slice(b"]\n");
        let c = read(&bytes);
        assert_eq!(c.units.len(), n);
        let handed_over: usize = c.units.iter().map(|(text, _)| text.len()).sum();
        assert!(
            handed_over <= bytes.len(),
            "{handed_over} > {}",
            bytes.len()
        );
        for (i, (text, line)) in c.units.iter().enumerate() {
            assert_eq!(text, &format!("{{\"a\":{i}}}"));
            assert_eq!(*line, i + 2);
        }
        // Concatenated pretty-printed documents likewise.
        let doc = "{\n  \"a\": 1\n}\n";
        let c = read(doc.repeat(n).as_bytes());
        assert_eq!(c.units.len(), n);
        assert!(c
            .units
            .iter()
            .enumerate()
            .all(|(i, (_, line))| *line == 3 * i + 1));
    }

    #[test]
    fn bom_is_skipped_and_utf16_is_named() {
        let c = read(b"\xef\xbb\xbf{\"a\":1}\n{\"b\":2}\n");
        assert_eq!(c.units.len(), 2);
        assert!(c.rejects.is_empty(), "{:?}", c.rejects);
        let utf16: Vec<u8> = "{\"a\":1}\n"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        for bytes in [[&[0xff, 0xfe][..], &utf16].concat(), utf16.clone()] {
            let c = read(&bytes);
            assert_eq!(c.rejects.len(), 1);
            assert!(
                c.rejects[0].1.contains("UTF-16 (little-endian)"),
                "{:?}",
                c.rejects
            );
        }
    }

    #[test]
    fn invalid_utf8_is_one_reject_in_every_layout() {
        let c = read(b"[{\"a\":\"\xff\"},\n{\"b\":1}]");
        assert_eq!(c.units.len(), 1);
        assert_eq!(c.rejects.len(), 1);
        assert!(c.rejects[0].1.contains("UTF-8"));
        let c = read(b"{\"a\":1}\n{\"a\":\"\xff\"}\n{\"b\":1}\n");
        assert_eq!(c.units.len(), 2);
        assert_eq!(c.rejects, vec![(2, c.rejects[0].1.clone())]);
    }

    #[test]
    fn a_truncated_container_keeps_its_complete_records() {
        let cut = b"{\"Records\": [\n{\"a\":1},\n{\"b\":2},\n{\"c\":\"cut he";
        let c = read(cut);
        assert_eq!(c.elements.len(), 2);
        assert_eq!(c.rejects.len(), 1);
        let (line, reason) = &c.rejects[0];
        assert_eq!(*line, 4);
        let byte = format!("byte {}", cut.len());
        assert!(
            reason.contains(&byte) && reason.contains("truncated"),
            "{reason}"
        );
        // One-line CloudTrail files are streamed too.
        let c = read(b"{\"Records\":[{\"a\":1},{\"b\":2},{\"c\"");
        assert_eq!(c.elements.len(), 2);
        assert_eq!(c.rejects.len(), 1);
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
