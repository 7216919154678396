//! Format detection and container opening: every outcome's text is a slice of the input, and
//! the scan's byte prefilter never changes which events a text yields.
#![no_main]
use libfuzzer_sys::fuzz_target;
use snapwatch_core::parse::detect::{
    for_each_contained_record, for_each_record, for_each_record_prefiltered, RecordOutcome,
};
use snapwatch_core::parse::Parsed;

/// The events of one text, as comparable strings.
fn events(
    text: &str,
    each_record: for<'a> fn(&'a str, &mut dyn FnMut(RecordOutcome<'a>)),
) -> Vec<String> {
    let mut out = Vec::new();
    each_record(text, &mut |o| {
        if let Ok(event @ Parsed::Event(_)) = o.result {
            out.push(format!("{event:?}"));
        }
    });
    out
}

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
    assert_eq!(
        events(text, for_each_record),
        events(text, for_each_record_prefiltered)
    );
});
