//! CloudTrail records and EventBridge envelopes: any text gives a result, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use snapwatch_core::parse::aws;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = aws::parse_record(text);
        let _ = aws::parse_eventbridge(text);
    }
});
