//! One streaming splitter that cuts a stream of log text into record-sized JSON texts, for every
//! reader: the CLI (files, stdin, S3 objects) and the CloudTrail archive Lambda. It serves the
//! layouts exported logs come in: JSON lines, one JSON array, one (pretty-printed) document or
//! several concatenated, and `{"Records": [...]}` / `{"records": [...]}` containers; a UTF-8
//! byte-order mark is skipped and UTF-16 text is named and rejected.
//!
//! The input is split in one pass that tracks nesting, strings and line numbers itself: elements
//! of a top-level array and of a container are handed over one at a time, so memory follows the
//! largest record, not the input, and line numbers are counted once, never by rescanning.
//! Anything unusable is handed to [`UnitHandler::reject`] with its line and a [`Rejection`]:
//! nothing is dropped silently, and no input makes it panic.
//!
//! It pulls from a blocking [`Read`]: callers with an async source feed it from a blocking thread.

use std::fmt;
use std::io::{self, Read};

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

/// Receives record-sized JSON texts and input-level problems.
pub trait UnitHandler {
    /// One top-level JSON text (a line, a top-level array element, a whole document); `line` is
    /// the 1-based line where it starts.
    fn unit(&mut self, text: &str, source: &str, line: usize);
    /// One element of a `Records`/`records` container: a record, not a container itself.
    fn element(&mut self, text: &str, source: &str, line: usize) {
        self.unit(text, source, line)
    }
    /// A `Records`/`records` container's array opens on `line`; its elements follow.
    fn container_start(&mut self, _source: &str, _line: usize) {}
    /// The container's array closes on `line`: what follows is no element of it.
    fn container_end(&mut self, _source: &str, _line: usize) {}
    /// Something in the input that is not a usable JSON text, at the 1-based `line`.
    fn reject(&mut self, source: &str, line: usize, why: Rejection);
    /// Bytes consumed so far from the current input, for progress.
    fn progress(&mut self, _bytes: u64) {}
}

/// Why part of an input was rejected. [`Rejection::is_record`] tells a record skipped from input
/// that stops being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The input is UTF-16 text (`order` is the byte order); nothing of it is read.
    Utf16 {
        /// `little-endian` or `big-endian`.
        order: &'static str,
    },
    /// The input does not start like JSON; nothing of it is read.
    NotJson {
        /// The first byte, as shown to a reader.
        found: String,
    },
    /// A JSON line that does not end its value on its line; the next line is read.
    InvalidLine {
        /// What was wrong, and where.
        message: String,
    },
    /// A document with a syntax error; the rest of the input is skipped.
    InvalidDocument {
        /// Input byte offset where reading stopped.
        offset: u64,
        /// What was wrong, and where.
        message: String,
    },
    /// A document longer than [`Limits::max_document_bytes`]; the rest of the input is skipped.
    DocumentTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// A record longer than [`Limits::max_record_bytes`], skipped unheld; the next is read.
    RecordTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A record that is not UTF-8 text; the next is read.
    NotUtf8(std::str::Utf8Error),
}

impl Rejection {
    /// One record is skipped and the input goes on (a broken JSON line, an oversized or
    /// non-UTF-8 record); otherwise the rest of the input is not read.
    pub fn is_record(&self) -> bool {
        matches!(
            self,
            Rejection::InvalidLine { .. }
                | Rejection::RecordTooLarge { .. }
                | Rejection::NotUtf8(_)
        )
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Utf16 { order } => write!(
                f,
                "UTF-16 ({order}) text: snapwatch reads UTF-8; convert it first (iconv -f UTF-16 -t UTF-8)"
            ),
            Rejection::NotJson { found } => {
                write!(f, "not JSON: input starts with {found}, expected '{{' or '['")
            }
            Rejection::InvalidLine { message } => write!(f, "invalid JSON: {message}"),
            Rejection::InvalidDocument { offset, message } => write!(
                f,
                "invalid JSON at byte {offset}: {message}; rest of this input skipped"
            ),
            Rejection::DocumentTooLarge { limit } => write!(
                f,
                "document larger than the {limit}-byte limit; rest of this input skipped"
            ),
            Rejection::RecordTooLarge { limit } => {
                write!(f, "record larger than the {limit}-byte limit, skipped")
            }
            Rejection::NotUtf8(e) => write!(f, "not UTF-8 text: {e}"),
        }
    }
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

/// Splits one decoded (not compressed) input and hands its records and rejections to `handler`;
/// `source` names the input in every call. An error is the reader's: what was handed over before
/// it stands.
pub fn split(
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
        split.handler.reject(source, 1, Rejection::Utf16 { order });
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
            let found = shown(first);
            self.handler
                .reject(self.source, line, Rejection::NotJson { found });
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
                        .reject(self.source, line, Rejection::InvalidLine { message });
                    self.skip_line()?;
                }
                Stop::Syntax { line, message } => {
                    let offset = self.src.offset();
                    self.handler.reject(
                        self.source,
                        line,
                        Rejection::InvalidDocument { offset, message },
                    );
                    return Ok(());
                }
                _ => {
                    let limit = self.limits.max_document_bytes;
                    self.handler.reject(
                        self.source,
                        start_line,
                        Rejection::DocumentTooLarge { limit },
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
                    .reject(self.source, line, Rejection::NotUtf8(e)),
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
            self.handler
                .reject(self.source, line, Rejection::RecordTooLarge { limit });
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
                    .reject(self.source, line, Rejection::NotUtf8(e)),
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
                    let line = self.src.line;
                    self.handler.container_start(self.source, line);
                    self.array(Kind::Element)?;
                    let line = self.src.line;
                    self.handler.container_end(self.source, line);
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

    #[derive(Default)]
    struct Collect {
        units: Vec<(String, usize)>,
        elements: Vec<(String, usize)>,
        rejects: Vec<(usize, String)>,
        why: Vec<Rejection>,
        containers: Vec<usize>,
    }

    impl UnitHandler for Collect {
        fn unit(&mut self, text: &str, _source: &str, line: usize) {
            self.units.push((text.to_string(), line));
        }
        fn element(&mut self, text: &str, _source: &str, line: usize) {
            self.elements.push((text.to_string(), line));
        }
        fn container_start(&mut self, _source: &str, line: usize) {
            self.containers.push(line);
        }
        fn container_end(&mut self, _source: &str, line: usize) {
            self.containers.push(line);
        }
        fn reject(&mut self, _source: &str, line: usize, why: Rejection) {
            self.rejects.push((line, why.to_string()));
            self.why.push(why);
        }
    }

    fn read_with(bytes: impl Read, limits: Limits) -> Collect {
        let mut c = Collect::default();
        split("t", bytes, &limits, &mut c).unwrap();
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
        // `{"a":` and 64 MiB of spaces, produced on the fly (the issue's shape, gunzipped).
        let endless = Generated {
            prefix: b"{\"a\":".to_vec(),
            fill: b' ',
            left: 64 << 20,
        };
        let c = read_with(endless, limits);
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
        assert_eq!(
            c.why,
            vec![Rejection::RecordTooLarge { limit: 1 << 20 }],
            "a record is skipped, the input goes on"
        );
        assert!(c.why[0].is_record());
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
        assert_eq!(
            c.why,
            vec![Rejection::DocumentTooLarge { limit: 8 << 20 }],
            "{:?}",
            c.rejects
        );
        assert!(!c.why[0].is_record());
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

    /// Reads `parts` one after the other, each in one `read` at most: a chunk boundary anywhere.
    struct Chunked<'p> {
        parts: Vec<&'p [u8]>,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some(part) = self.parts.first_mut() else {
                return Ok(0);
            };
            let n = part.len().min(buf.len());
            buf[..n].copy_from_slice(&part[..n]);
            *part = &part[n..];
            if part.is_empty() {
                self.parts.remove(0);
            }
            Ok(n)
        }
    }

    // Ported from the archive's former splitter (functions/aws/src/archive/records.rs): its
    // cases now run against the one splitter both readers use.

    #[test]
    fn container_elements_are_whole_wherever_the_chunks_are_cut() {
        let doc = br#"{"Records":[{"a":"x}]\"{","b":[1,{"c":2}]},{"d":3} , 7, "s,]"]}"#;
        let want = vec![
            r#"{"a":"x}]\"{","b":[1,{"c":2}]}"#,
            r#"{"d":3}"#,
            "7",
            r#""s,]""#,
        ];
        for cut in 0..=doc.len() {
            let (first, second) = doc.split_at(cut);
            let c = read_with(
                Chunked {
                    parts: vec![first, second],
                },
                Limits::default(),
            );
            let texts: Vec<&str> = c.elements.iter().map(|e| e.0.as_str()).collect();
            assert_eq!(texts, want, "cut at {cut}");
            assert!(c.rejects.is_empty(), "cut at {cut}: {:?}", c.rejects);
            assert_eq!(c.containers, vec![1, 1], "opened and closed, cut at {cut}");
        }
        // And one byte per read.
        let bytes: Vec<&[u8]> = doc.chunks(1).collect();
        let c = read_with(Chunked { parts: bytes }, Limits::default());
        let texts: Vec<&str> = c.elements.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(texts, want);
    }

    #[test]
    fn other_top_level_keys_are_skipped_and_element_lines_counted() {
        let doc = b"{\"Other\":[{\"x\":1}],\n\"Records\":[\n{\"a\":1},\n{\"b\":2}\n],\"z\":\"Records\"}\n";
        let c = read(doc);
        assert!(c.units.is_empty(), "{:?}", c.units);
        assert!(c.rejects.is_empty(), "{:?}", c.rejects);
        assert_eq!(
            c.elements,
            vec![("{\"a\":1}".into(), 3), ("{\"b\":2}".into(), 4)]
        );
        assert_eq!(c.containers, vec![2, 5]);
    }

    #[test]
    fn an_oversized_element_is_rejected_with_its_line_and_the_next_is_whole() {
        let limits = Limits {
            max_record_bytes: 8,
            max_document_bytes: 1 << 20,
        };
        let c = read_with(
            &b"{\"Records\":[\n{\"long\":\"0123456789\"},\n{\"a\":1}]}"[..],
            limits,
        );
        assert_eq!(c.elements, vec![("{\"a\":1}".into(), 3)]);
        assert_eq!(c.rejects.len(), 1);
        assert_eq!(c.rejects[0].0, 2);
        assert_eq!(c.why, vec![Rejection::RecordTooLarge { limit: 8 }]);
    }

    #[test]
    fn an_empty_container_is_still_a_container() {
        let c = read(b"{\"Records\":[]}");
        assert_eq!(c.containers, vec![1, 1]);
        assert!(c.units.is_empty() && c.elements.is_empty() && c.rejects.is_empty());
        let c = read(b"");
        assert!(c.containers.is_empty() && c.units.is_empty() && c.rejects.is_empty());
    }
}
