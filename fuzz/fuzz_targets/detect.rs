//! Format detection and container opening: every outcome's text is a slice of the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use snapwatch_core::parse::detect::{for_each_contained_record, for_each_record};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let range = text.as_bytes().as_ptr_range();
    let mut check = |raw: &str| {
        let p = raw.as_ptr();
        assert!(range.start <= p && p as usize + raw.len() <= range.end as usize);
    };
    for_each_record(text, &mut |o| check(o.raw));
    for_each_contained_record(text, &mut |o| check(o.raw));
});
