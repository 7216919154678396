//! Reading log inputs: files, directories (walked), stdin; gzip by magic bytes; and the three
//! layouts exported logs come in: JSON lines, one JSON array, or one (pretty-printed) document or
//! several concatenated. Hands each top-level JSON text to a [`UnitHandler`] with its location.

use anyhow::Context;
use flate2::read::MultiGzDecoder;
use serde_json::value::RawValue;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

const READ_BUFFER: usize = 256 * 1024;

/// Receives top-level JSON texts and input-level problems.
pub trait UnitHandler {
    /// One JSON text; `line` is the 1-based line where it starts.
    fn unit(&mut self, text: &str, source: &str, line: usize);
    /// Something in the input that is not a JSON text at all.
    fn reject(&mut self, source: &str, line: usize, reason: String);
    /// Bytes consumed so far from the current input, for progress.
    fn progress(&mut self, _bytes: u64) {}
}

/// Fails fast, before any output, when a PATH does not exist or cannot be read.
pub fn check_readable(path: &Path) -> anyhow::Result<()> {
    if path.as_os_str() == "-" {
        return Ok(());
    }
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_file() {
        File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    } else if meta.is_dir() {
        std::fs::read_dir(path)
            .with_context(|| format!("cannot read directory {}", path.display()))?;
    }
    Ok(())
}

/// Reads `path` (file, directory or `-`). Returns the paths that could not be read; everything
/// else is handed to `handler`.
pub fn read_path(path: &Path, handler: &mut impl UnitHandler) -> Vec<(String, io::Error)> {
    let mut failures = Vec::new();
    if path.as_os_str() == "-" {
        let stdin = io::stdin();
        if let Err(e) = read_stream("-", stdin.lock(), handler) {
            failures.push(("-".to_string(), e));
        }
        return failures;
    }
    let mut files = Vec::new();
    collect_files(path, &mut files, &mut failures);
    for file in files {
        let name = file.display().to_string();
        let result = File::open(&file).and_then(|f| read_stream(&name, f, handler));
        if let Err(e) = result {
            failures.push((name, e));
        }
    }
    failures
}

fn collect_files(
    path: &Path,
    out: &mut Vec<std::path::PathBuf>,
    failures: &mut Vec<(String, io::Error)>,
) {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => match std::fs::read_dir(path) {
            Ok(entries) => {
                let mut children: Vec<_> =
                    entries.filter_map(Result::ok).map(|e| e.path()).collect();
                // Sorted so that repeated scans report in the same order.
                children.sort();
                for child in children {
                    collect_files(&child, out, failures);
                }
            }
            Err(e) => failures.push((path.display().to_string(), e)),
        },
        Ok(_) => out.push(path.to_path_buf()),
        Err(e) => failures.push((path.display().to_string(), e)),
    }
}

/// Counts bytes read from the underlying input for the progress bar.
struct Counting<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

fn read_stream(source: &str, raw: impl Read, handler: &mut impl UnitHandler) -> io::Result<()> {
    let mut reader = BufReader::with_capacity(READ_BUFFER, raw);
    let gzip = reader.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    if gzip {
        let decoder = BufReader::with_capacity(READ_BUFFER, MultiGzDecoder::new(reader));
        read_decoded(source, decoder, handler)
    } else {
        read_decoded(source, reader, handler)
    }
}

fn read_decoded(
    source: &str,
    reader: impl BufRead,
    handler: &mut impl UnitHandler,
) -> io::Result<()> {
    let mut reader = BufReader::with_capacity(
        READ_BUFFER,
        Counting {
            inner: reader,
            bytes: 0,
        },
    );
    let mut line_no = 1usize;
    // Skip leading blank space, counting lines, to see how the input starts.
    let first = loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(()); // empty input: nothing to report
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                line_no += buf[..i].iter().filter(|&&b| b == b'\n').count();
                let first = buf[i];
                reader.consume(i);
                break first;
            }
            None => {
                let n = buf.len();
                line_no += buf.iter().filter(|&&b| b == b'\n').count();
                reader.consume(n);
            }
        }
    };
    match first {
        b'[' => {
            let text = read_rest(&mut reader)?;
            read_array(source, &text, line_no, handler);
        }
        b'{' => {
            let mut first_line = Vec::new();
            reader.read_until(b'\n', &mut first_line)?;
            let complete = std::str::from_utf8(&first_line)
                .ok()
                .is_some_and(|l| serde_json::from_str::<serde::de::IgnoredAny>(l.trim()).is_ok());
            if complete {
                emit_line(source, &first_line, line_no, handler);
                read_lines(source, &mut reader, line_no + 1, handler)?;
            } else {
                let mut text = first_line;
                reader.read_to_end(&mut text)?;
                match String::from_utf8(text) {
                    Ok(text) => read_documents(source, &text, line_no, handler),
                    Err(e) => handler.reject(source, line_no, format!("not UTF-8 text: {e}")),
                }
            }
        }
        other => {
            let shown = char::from(other).escape_default().to_string();
            handler.reject(
                source,
                line_no,
                format!("not JSON: input starts with {shown:?}, expected '{{' or '['"),
            );
        }
    }
    handler.progress(reader.get_ref().bytes);
    Ok(())
}

fn read_rest(reader: &mut impl Read) -> io::Result<String> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes)?;
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// JSON lines: each non-blank line is one text; a bad line is rejected alone.
fn read_lines<R: Read>(
    source: &str,
    reader: &mut BufReader<Counting<R>>,
    mut line_no: usize,
    handler: &mut impl UnitHandler,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        emit_line(source, &buf, line_no, handler);
        line_no += 1;
        if line_no % 65_536 == 0 {
            handler.progress(reader.get_ref().bytes);
        }
    }
}

fn emit_line(source: &str, bytes: &[u8], line_no: usize, handler: &mut impl UnitHandler) {
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            let text = text.trim();
            if !text.is_empty() {
                handler.unit(text, source, line_no);
            }
        }
        Err(e) => handler.reject(source, line_no, format!("not UTF-8 text: {e}")),
    }
}

/// One JSON array: each element is one text.
fn read_array(source: &str, text: &str, base_line: usize, handler: &mut impl UnitHandler) {
    let doc = text;
    match serde_json::from_str::<Vec<&RawValue>>(doc) {
        Ok(elements) => {
            for element in elements {
                let line = base_line + line_offset(doc, element.get());
                handler.unit(element.get(), source, line);
            }
        }
        Err(e) => handler.reject(
            source,
            base_line + e.line().saturating_sub(1),
            format!("invalid JSON array (column {}): {e}", e.column()),
        ),
    }
}

/// One or more (pretty-printed) documents one after another.
fn read_documents(source: &str, text: &str, base_line: usize, handler: &mut impl UnitHandler) {
    let doc = text;
    let mut stream = serde_json::Deserializer::from_str(doc).into_iter::<&RawValue>();
    for item in stream.by_ref() {
        match item {
            Ok(value) => {
                let line = base_line + line_offset(doc, value.get());
                handler.unit(value.get(), source, line);
            }
            Err(e) => {
                // After a syntax error there is no reliable way to find the next document.
                handler.reject(
                    source,
                    base_line + e.line().saturating_sub(1),
                    format!(
                        "invalid JSON (column {}), rest of this input skipped: {e}",
                        e.column()
                    ),
                );
                return;
            }
        }
    }
}

/// Lines between the start of `doc` and `part`, a slice of it.
pub fn line_offset(doc: &str, part: &str) -> usize {
    let offset = (part.as_ptr() as usize).saturating_sub(doc.as_ptr() as usize);
    doc.as_bytes()
        .get(..offset)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[derive(Default)]
    struct Collect {
        units: Vec<(String, usize)>,
        rejects: Vec<(usize, String)>,
    }

    impl UnitHandler for Collect {
        fn unit(&mut self, text: &str, _source: &str, line: usize) {
            self.units.push((text.to_string(), line));
        }
        fn reject(&mut self, _source: &str, line: usize, reason: String) {
            self.rejects.push((line, reason));
        }
    }

    fn read(bytes: &[u8]) -> Collect {
        let mut c = Collect::default();
        read_stream("t", bytes, &mut c).unwrap();
        c
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
    }

    #[test]
    fn arrays_and_pretty_documents_report_element_lines() {
        let c = read(b"\n[\n  {\"a\": 1},\n  {\"b\": 2}\n]\n");
        assert_eq!(c.units.iter().map(|u| u.1).collect::<Vec<_>>(), vec![3, 4]);
        let c = read(b"{\n \"Records\": [\n  {\"a\": 1}\n ]\n}\n{\n \"x\": 2\n}\n");
        assert_eq!(c.units.len(), 2);
        assert_eq!(c.units[1].1, 6);
        assert!(c.units[0].0.contains("Records"));
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
        assert_eq!(c.units.len(), 1);
    }
}
