//! Splits a CloudTrail log file (`{"Records":[{…},{…}]}`) into its records as its decompressed
//! bytes arrive, so an object is never held whole: memory follows the largest record.
//!
//! Push-based (bytes are written in, finished records taken out) because the body arrives as an
//! async stream and each record's facts are stored with async calls in between; the CLI's
//! splitter (cli/src/input.rs) pulls from a blocking `Read` and serves many more layouts.

use std::io;

/// One element of the `Records` array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The element's JSON text as written (cut at the size limit when `oversized`).
    pub text: Vec<u8>,
    /// 1-based line of the decompressed object where the element starts.
    pub line: usize,
    /// 1-based position in the `Records` array.
    pub index: usize,
    /// The element was larger than the limit: `text` holds only its start.
    pub oversized: bool,
}

/// The object is not a readable CloudTrail log file; the message says where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct SplitError {
    pub line: usize,
    pub message: String,
}

/// The splitter's state between writes.
#[derive(Debug)]
pub struct RecordSplitter {
    max_element_bytes: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// The last string read at depth 1 (the top-level object's keys), while reading it.
    key: Vec<u8>,
    reading_key: bool,
    in_records: bool,
    saw_records: bool,
    /// Capturing an element: an object/array (ends when depth returns to 2) or a scalar (ends at
    /// the next `,` or `]` at depth 2).
    capturing: Option<Capture>,
    element: Vec<u8>,
    element_line: usize,
    oversized: bool,
    index: usize,
    line: usize,
    started: bool,
    closed: bool,
    done: Vec<Element>,
    error: Option<SplitError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Capture {
    Nested,
    Scalar,
}

const RECORDS_KEY: &[u8] = b"Records";

impl RecordSplitter {
    /// A splitter that cuts elements larger than `max_element_bytes` (reported `oversized`).
    pub fn new(max_element_bytes: usize) -> Self {
        RecordSplitter {
            max_element_bytes,
            depth: 0,
            in_string: false,
            escaped: false,
            key: Vec::new(),
            reading_key: false,
            in_records: false,
            saw_records: false,
            capturing: None,
            element: Vec::new(),
            element_line: 0,
            oversized: false,
            index: 0,
            line: 1,
            started: false,
            closed: false,
            done: Vec::new(),
            error: None,
        }
    }

    /// The elements finished so far, in order; they are not returned again.
    pub fn take_elements(&mut self) -> Vec<Element> {
        std::mem::take(&mut self.done)
    }

    /// Ends the object: an error when it stopped inside a value or held no `Records` array.
    pub fn finish(&mut self) -> Result<(), SplitError> {
        if let Some(err) = &self.error {
            return Err(err.clone());
        }
        if !self.started {
            return Err(self.fail("the object is empty"));
        }
        if self.depth > 0 || self.in_string {
            return Err(self.fail("the object ends inside a JSON value (truncated?)"));
        }
        if !self.saw_records {
            return Err(self.fail("not a CloudTrail log file: no top-level Records array"));
        }
        Ok(())
    }

    fn fail(&self, message: &str) -> SplitError {
        SplitError {
            line: self.line,
            message: message.to_string(),
        }
    }

    /// Reads more decompressed bytes. After an error the rest of the input is ignored.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), SplitError> {
        if let Some(err) = &self.error {
            return Err(err.clone());
        }
        for &b in bytes {
            if let Err(message) = self.byte(b) {
                let err = SplitError {
                    line: self.line,
                    message,
                };
                self.error = Some(err.clone());
                return Err(err);
            }
        }
        Ok(())
    }

    fn push(&mut self, b: u8) {
        if self.element.len() < self.max_element_bytes {
            self.element.push(b);
        } else {
            self.oversized = true;
        }
    }

    fn start(&mut self, capture: Capture, b: u8) {
        self.index += 1;
        self.capturing = Some(capture);
        self.element.clear();
        self.oversized = false;
        self.element_line = self.line;
        self.push(b);
    }

    fn end(&mut self) {
        self.capturing = None;
        self.done.push(Element {
            text: std::mem::take(&mut self.element),
            line: self.element_line,
            index: self.index,
            oversized: self.oversized,
        });
    }

    fn byte(&mut self, b: u8) -> Result<(), String> {
        if b == b'\n' {
            self.line += 1;
        }
        if self.in_string {
            if self.capturing.is_some() {
                self.push(b);
            }
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
                self.reading_key = false;
            } else if self.reading_key && self.key.len() <= RECORDS_KEY.len() {
                self.key.push(b);
            }
            return Ok(());
        }
        if b.is_ascii_whitespace() {
            if self.capturing.is_some() {
                self.push(b);
            }
            return Ok(());
        }
        if self.closed {
            return Err("data after the JSON document".into());
        }
        let element_level = self.in_records && self.depth == 2;
        match b {
            b'{' | b'[' => {
                if self.depth == 0 {
                    if b != b'{' {
                        return Err("not a CloudTrail log file: it is not a JSON object".into());
                    }
                    self.started = true;
                } else if self.depth == 1 && b == b'[' && self.key == RECORDS_KEY {
                    self.in_records = true;
                    self.saw_records = true;
                } else if element_level && self.capturing.is_none() {
                    self.start(Capture::Nested, b);
                    self.depth += 1;
                    return Ok(());
                }
                if self.capturing.is_some() {
                    self.push(b);
                }
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(format!("nested deeper than {MAX_DEPTH} levels"));
                }
            }
            b'}' | b']' => {
                if self.depth == 0 {
                    return Err(format!("unexpected `{}`", b as char));
                }
                if self.capturing == Some(Capture::Scalar) && element_level {
                    self.end();
                } else if self.capturing.is_some() {
                    self.push(b);
                }
                self.depth -= 1;
                if self.capturing == Some(Capture::Nested) && self.depth == 2 {
                    self.end();
                }
                if self.depth == 1 {
                    self.in_records = false;
                }
                if self.depth == 0 {
                    self.closed = true;
                }
            }
            b',' => {
                if self.capturing == Some(Capture::Scalar) && element_level {
                    self.end();
                } else if self.capturing.is_some() {
                    self.push(b);
                }
            }
            _ => {
                if self.depth == 0 {
                    return Err("not a CloudTrail log file: it is not a JSON object".into());
                }
                if b == b'"' {
                    self.in_string = true;
                    if self.depth == 1 {
                        self.key.clear();
                        self.reading_key = true;
                    }
                }
                if element_level && self.capturing.is_none() {
                    self.start(Capture::Scalar, b);
                } else if self.capturing.is_some() {
                    self.push(b);
                }
            }
        }
        Ok(())
    }
}

/// Deeper nesting than any CloudTrail record (serde_json itself stops at 128).
const MAX_DEPTH: usize = 1024;

/// Lets a decompressor write straight into the splitter.
impl io::Write for RecordSplitter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.feed(buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_in(parts: &[&[u8]]) -> (Vec<Element>, Result<(), SplitError>) {
        let mut s = RecordSplitter::new(1 << 20);
        let mut out = Vec::new();
        for part in parts {
            if s.feed(part).is_err() {
                break;
            }
            out.extend(s.take_elements());
        }
        let end = s.finish();
        out.extend(s.take_elements());
        (out, end)
    }

    fn texts(elements: &[Element]) -> Vec<String> {
        elements
            .iter()
            .map(|e| String::from_utf8(e.text.clone()).unwrap())
            .collect()
    }

    #[test]
    fn yields_each_record_whatever_the_chunking() {
        let doc = br#"{"Records":[{"a":"x}]\"{","b":[1,{"c":2}]},{"d":3} , 7, "s,]"]}"#;
        for cut in 0..doc.len() {
            let (first, second) = doc.split_at(cut);
            let (elements, end) = split_in(&[first, second]);
            assert_eq!(end, Ok(()), "cut at {cut}");
            assert_eq!(
                texts(&elements),
                [
                    r#"{"a":"x}]\"{","b":[1,{"c":2}]}"#,
                    r#"{"d":3}"#,
                    "7",
                    r#""s,]""#
                ],
                "cut at {cut}"
            );
            let indexes: Vec<usize> = elements.iter().map(|e| e.index).collect();
            assert_eq!(indexes, [1, 2, 3, 4]);
        }
    }

    #[test]
    fn other_top_level_keys_are_ignored_and_lines_are_counted() {
        let doc = b"{\"Other\":[{\"x\":1}],\n\"Records\":[\n{\"a\":1},\n{\"b\":2}\n],\"z\":\"Records\"}\n";
        let (elements, end) = split_in(&[doc]);
        assert_eq!(end, Ok(()));
        assert_eq!(texts(&elements), [r#"{"a":1}"#, r#"{"b":2}"#]);
        let lines: Vec<usize> = elements.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4]);
    }

    #[test]
    fn a_truncated_or_foreign_object_is_an_error() {
        let (elements, end) = split_in(&[br#"{"Records":[{"a":1},{"b":"#]);
        assert_eq!(texts(&elements), [r#"{"a":1}"#]);
        assert!(end.unwrap_err().message.contains("truncated"));
        let (_, end) = split_in(&[b"[1,2]"]);
        assert!(end.unwrap_err().message.contains("not a JSON object"));
        let (_, end) = split_in(&[br#"{"records":[]}"#]);
        assert!(end.unwrap_err().message.contains("no top-level Records"));
        let (_, end) = split_in(&[b""]);
        assert!(end.unwrap_err().message.contains("empty"));
        let (_, end) = split_in(&[br#"{"Records":[]}}"#]);
        assert!(end.is_err());
        let (_, end) = split_in(&[br#"{"Records":[]} x"#]);
        assert!(end.unwrap_err().message.contains("after the JSON document"));
    }

    #[test]
    fn an_oversized_record_is_cut_and_flagged_and_the_next_one_is_whole() {
        let mut s = RecordSplitter::new(8);
        s.feed(br#"{"Records":[{"long":"0123456789"},{"a":1}]}"#)
            .unwrap();
        s.finish().unwrap();
        let elements = s.take_elements();
        assert_eq!(elements.len(), 2);
        assert!(elements[0].oversized);
        assert_eq!(elements[0].text.len(), 8);
        assert!(!elements[1].oversized);
        assert_eq!(elements[1].text, br#"{"a":1}"#);
    }
}
