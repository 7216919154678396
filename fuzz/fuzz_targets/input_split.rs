//! The input splitting (the core's splitter behind the CLI's reader) (layouts, containers, limits, BOM, gzip): never a panic, and every
//! reported line exists in the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use snapwatch_cli::input::{read_stream, Limits, Rejection, UnitHandler};

struct Check {
    lines: usize,
    units: usize,
}

impl Check {
    fn line(&self, line: usize) {
        assert!(line >= 1 && line <= self.lines, "line {line} of {}", self.lines);
    }
}

impl UnitHandler for Check {
    fn unit(&mut self, text: &str, _source: &str, line: usize) {
        self.line(line);
        assert!(!text.is_empty());
        self.units += 1;
    }
    fn element(&mut self, text: &str, source: &str, line: usize) {
        self.unit(text, source, line);
    }
    fn reject(&mut self, _source: &str, line: usize, why: Rejection) {
        self.line(line);
        assert!(!why.to_string().is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    // Small limits so that the limit paths are reached by small inputs.
    let limits = Limits {
        max_record_bytes: 512,
        max_document_bytes: 4096,
    };
    // gzip input decompresses to more lines than it has; count them only for plain input.
    let gzip = data.starts_with(&[0x1f, 0x8b]);
    let lines = if gzip {
        usize::MAX
    } else {
        data.iter().filter(|&&b| b == b'\n').count() + 1
    };
    let mut check = Check { lines, units: 0 };
    let _ = read_stream("fuzz", data, &limits, &mut check);
    let _ = check.units;
});
