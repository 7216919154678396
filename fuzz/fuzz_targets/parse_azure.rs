//! Azure Activity Log records (diagnostic, REST export, Event Grid): never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use snapwatch_core::parse::azure;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = azure::parse_record(text);
    }
});
