//! The blocking half of reading one log file: on a blocking thread, the compressed chunks the
//! async side reads from S3 go through gzip into the core's splitter ([`snapwatch_core::split`],
//! the one `snapwatch scan` uses), and each element of `Records` is sent back through a bounded
//! channel as soon as it is complete. Both channels are bounded, so memory follows a few chunks
//! and records in flight plus the largest record, never the object.

use snapwatch_core::split::{Limits, Rejection, UnitHandler};
use std::io::{self, Read};
use tokio::sync::mpsc::{Receiver, Sender};

/// Compressed chunks read ahead of the splitting thread.
pub const CHUNKS_IN_FLIGHT: usize = 2;
/// Records split ahead of the async side, which stores each one's facts before the next.
pub const RECORDS_IN_FLIGHT: usize = 16;

/// What the splitting thread sends on, in object order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// One element of `Records`.
    Record {
        /// Its JSON text as written.
        text: String,
        /// 1-based line of the decompressed object where it starts.
        line: usize,
        /// 1-based position in the `Records` array.
        index: usize,
    },
    /// An element that was not read: larger than the limit, or not UTF-8.
    Skipped {
        line: usize,
        index: usize,
        why: Rejection,
    },
}

/// Gunzips and splits one object read from `chunks`, sending its records to `records`. Runs on a
/// blocking thread. The error says why the object is not a readable CloudTrail log file; the
/// records sent before it stand.
pub fn split_object(
    chunks: Receiver<Vec<u8>>,
    records: Sender<Piece>,
    max_record_bytes: usize,
) -> Result<(), String> {
    let reader = ChunkReader {
        chunks,
        current: Vec::new(),
        pos: 0,
        records: records.clone(),
    };
    let limits = Limits {
        max_record_bytes,
        // One log file is one document; its size is bounded by the object's.
        max_document_bytes: u64::MAX,
    };
    let mut file = LogFile {
        records,
        index: 0,
        containers: 0,
        in_container: false,
        bytes: 0,
        unreadable: None,
    };
    let gunzip = flate2::read::MultiGzDecoder::new(reader);
    let read = snapwatch_core::split::split("object", gunzip, &limits, &mut file);
    if let Some(reason) = file.unreadable {
        return Err(reason);
    }
    read.map_err(|e| format!("gzip stream: {e}"))?;
    if file.bytes == 0 {
        return Err("the object is empty".into());
    }
    if file.containers == 0 {
        return Err("not a CloudTrail log file: no top-level Records array".into());
    }
    Ok(())
}

/// The async side's chunks as a blocking `Read`.
struct ChunkReader {
    chunks: Receiver<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    /// Closed when the async side stops taking records (it failed): reading stops too.
    records: Sender<Piece>,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.records.is_closed() {
            return Err(io::Error::other("the object's records are no longer taken"));
        }
        while self.pos == self.current.len() {
            match self.chunks.blocking_recv() {
                Some(chunk) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                // The async side ended the body (or failed reading it, which it reports).
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The splitter's handler for a CloudTrail log file: one `{"Records":[…]}` document.
struct LogFile {
    records: Sender<Piece>,
    index: usize,
    containers: usize,
    in_container: bool,
    bytes: u64,
    /// The first reason the object is not a readable CloudTrail log file.
    unreadable: Option<String>,
}

impl LogFile {
    fn unreadable(&mut self, line: usize, reason: String) {
        self.unreadable
            .get_or_insert_with(|| format!("line {line}: {reason}"));
    }

    fn send(&mut self, piece: Piece) {
        // A closed channel means the async side failed; the reader then stops the split.
        let _ = self.records.blocking_send(piece);
    }
}

impl UnitHandler for LogFile {
    fn unit(&mut self, _text: &str, _source: &str, line: usize) {
        self.unreadable(
            line,
            "not a CloudTrail log file: a JSON value outside the Records array".into(),
        );
    }

    fn element(&mut self, text: &str, _source: &str, line: usize) {
        self.index += 1;
        let index = self.index;
        self.send(Piece::Record {
            text: text.to_string(),
            line,
            index,
        });
    }

    fn container_start(&mut self, _source: &str, line: usize) {
        self.containers += 1;
        self.in_container = true;
        if self.containers > 1 {
            self.unreadable(line, "more than one Records array".into());
        }
    }

    fn container_end(&mut self, _source: &str, _line: usize) {
        self.in_container = false;
    }

    fn reject(&mut self, _source: &str, line: usize, why: Rejection) {
        if self.in_container && why.is_record() {
            self.index += 1;
            let index = self.index;
            self.send(Piece::Skipped { line, index, why });
        } else {
            self.unreadable(line, why.to_string());
        }
    }

    fn progress(&mut self, bytes: u64) {
        self.bytes = bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Splits `parts` (compressed chunks) on a thread, as the archive does; what was sent and
    /// how it ended.
    fn split_chunks(
        parts: Vec<Vec<u8>>,
        max_record_bytes: usize,
    ) -> (Vec<Piece>, Result<(), String>) {
        let (chunk_tx, chunk_rx) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
        let (record_tx, mut record_rx) = tokio::sync::mpsc::channel(RECORDS_IN_FLIGHT);
        let splitting =
            std::thread::spawn(move || split_object(chunk_rx, record_tx, max_record_bytes));
        let feeding = std::thread::spawn(move || {
            for part in parts {
                if chunk_tx.blocking_send(part).is_err() {
                    break;
                }
            }
        });
        let mut pieces = Vec::new();
        while let Some(piece) = record_rx.blocking_recv() {
            pieces.push(piece);
        }
        feeding.join().unwrap();
        (pieces, splitting.join().unwrap())
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    fn texts(pieces: &[Piece]) -> Vec<(String, usize, usize)> {
        pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Record { text, line, index } => Some((text.clone(), *line, *index)),
                Piece::Skipped { .. } => None,
            })
            .collect()
    }

    #[test]
    fn records_come_whole_with_line_and_index_wherever_the_gzip_chunks_are_cut() {
        let doc =
            b"{\"Records\":[{\"a\":\"x}]\\\"{\",\"b\":[1,{\"c\":2}]},\n{\"d\":3} , 7, \"s,]\"]}";
        let compressed = gzip(doc);
        for cut in 0..=compressed.len() {
            let (first, second) = compressed.split_at(cut);
            let (pieces, end) = split_chunks(vec![first.to_vec(), second.to_vec()], 1 << 20);
            assert_eq!(end, Ok(()), "cut at {cut}");
            assert_eq!(
                texts(&pieces),
                [
                    (r#"{"a":"x}]\"{","b":[1,{"c":2}]}"#.to_string(), 1, 1),
                    (r#"{"d":3}"#.to_string(), 2, 2),
                    ("7".to_string(), 2, 3),
                    (r#""s,]""#.to_string(), 2, 4),
                ],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn an_oversized_record_is_skipped_with_its_position_and_the_next_is_whole() {
        let doc = b"{\"Records\":[\n{\"long\":\"0123456789\"},\n{\"a\":1}]}";
        let (pieces, end) = split_chunks(vec![gzip(doc)], 8);
        assert_eq!(end, Ok(()));
        assert_eq!(
            pieces,
            [
                Piece::Skipped {
                    line: 2,
                    index: 1,
                    why: Rejection::RecordTooLarge { limit: 8 }
                },
                Piece::Record {
                    text: r#"{"a":1}"#.into(),
                    line: 3,
                    index: 2
                }
            ]
        );
    }

    #[test]
    fn a_truncated_corrupt_or_foreign_object_is_unreadable() {
        // Truncated inside a record: the records before it were sent.
        let (pieces, end) = split_chunks(vec![gzip(br#"{"Records":[{"a":1},{"b":"#)], 1 << 20);
        assert_eq!(texts(&pieces).len(), 1);
        assert!(end.unwrap_err().contains("truncated"));
        // A gzip stream cut short.
        let whole = gzip(br#"{"Records":[{"a":1},{"b":2}]}"#);
        let (_, end) = split_chunks(vec![whole[..whole.len() / 2].to_vec()], 1 << 20);
        assert!(end.is_err());
        let (_, end) = split_chunks(vec![b"{\"Records\":[]}".to_vec()], 1 << 20);
        assert!(end.unwrap_err().starts_with("gzip stream"), "not gzip");
        let (_, end) = split_chunks(vec![gzip(b"[1,2]")], 1 << 20);
        assert!(end.unwrap_err().contains("outside the Records array"));
        let (_, end) = split_chunks(vec![gzip(br#"{"Other":[]}"#)], 1 << 20);
        assert!(end.unwrap_err().contains("outside the Records array"));
        let (_, end) = split_chunks(vec![gzip(b"")], 1 << 20);
        assert!(end.unwrap_err().contains("empty"));
        let (_, end) = split_chunks(vec![gzip(br#"{"Records":[]}}"#)], 1 << 20);
        assert!(end.is_err());
        let (_, end) = split_chunks(vec![gzip(br#"{"Records":[]} x"#)], 1 << 20);
        assert!(end.is_err());
        let (_, end) = split_chunks(vec![gzip(b"{\"Records\":[]}\n{\"Records\":[]}")], 1 << 20);
        assert!(
            end.unwrap_err().contains("outside the Records array"),
            "a second document"
        );
        let (_, end) = split_chunks(vec![gzip(br#"{"Records":[],"Records":[]}"#)], 1 << 20);
        assert!(end.unwrap_err().contains("more than one Records array"));
        // An empty log file is a log file.
        let (pieces, end) = split_chunks(vec![gzip(br#"{"Records":[]}"#)], 1 << 20);
        assert!(pieces.is_empty());
        assert_eq!(end, Ok(()));
    }

    #[test]
    fn the_split_stops_when_the_records_are_no_longer_taken() {
        let (chunk_tx, chunk_rx) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
        let (record_tx, record_rx) = tokio::sync::mpsc::channel(1);
        drop(record_rx);
        let splitting = std::thread::spawn(move || split_object(chunk_rx, record_tx, 1 << 20));
        // Never-ending input: only the closed record channel ends the split.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"{\"Records\":[").unwrap();
        let mut sent = 0;
        loop {
            gz.write_all(b"{\"a\":1},").unwrap();
            gz.flush().unwrap();
            if chunk_tx
                .blocking_send(std::mem::take(gz.get_mut()))
                .is_err()
            {
                break;
            }
            sent += 1;
            assert!(sent < 100_000, "the split did not stop");
        }
        assert!(splitting.join().unwrap().is_err());
    }
}
