//! The benchmark's yardstick: the time serde_json needs merely to parse the same JSON lines
//! (into `IgnoredAny`, i.e. full validation, no tree). `parse_baseline <file>`.

use serde::de::IgnoredAny;
use std::io::{BufRead, BufReader};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: parse_baseline <file>"))?;
    let started = Instant::now();
    let mut reader = BufReader::with_capacity(256 * 1024, std::fs::File::open(&path)?);
    let mut line = Vec::with_capacity(4096);
    let (mut records, mut bytes) = (0u64, 0u64);
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        let text = std::str::from_utf8(&line)?;
        if text.trim().is_empty() {
            continue;
        }
        serde_json::from_str::<IgnoredAny>(text)?;
        records += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "records={records} bytes={bytes} seconds={secs:.3} records_per_sec={:.0} mb_per_sec={:.1}",
        records as f64 / secs,
        bytes as f64 / 1e6 / secs
    );
    Ok(())
}
