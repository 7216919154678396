//! GCP LogEntries and Eventarc CloudEvents: never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use snapwatch_core::parse::gcp;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = gcp::parse_entry(text);
        let _ = gcp::parse_cloudevent(text);
    }
});
