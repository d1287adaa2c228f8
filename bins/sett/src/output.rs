//! Printing helpers: JSON / JSON lines / tables on stdout, times for humans.

use std::io::Write;

use anyhow::Result;
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};

/// Writes one line to stdout (a closed pipe surfaces as a BrokenPipe error, which `main` treats
/// as success).
pub fn line(s: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{s}")?;
    Ok(())
}

/// Stdout behind one large buffer, for commands that print many lines in a burst (`watch`
/// replay, `hoard`): a write per line would cost a system call each. Callers [`flush`] before
/// they wait (for Redis or for a live event) so a reader never sees a line late.
static BUFFERED: std::sync::LazyLock<std::sync::Mutex<std::io::BufWriter<std::io::Stdout>>> =
    std::sync::LazyLock::new(|| std::sync::Mutex::new(std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout())));

/// Writes one line through the shared buffer (see [`flush`]).
pub fn buffered_line(s: &str) -> Result<()> {
    let mut out = BUFFERED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    out.write_all(s.as_bytes())?;
    out.write_all(b"\n")?;
    Ok(())
}

/// A `Write` into the shared buffer, for serializers that stream.
pub struct Buffered;

impl Write for Buffered {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        BUFFERED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        BUFFERED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).flush()
    }
}

/// Writes what [`buffered_line`] holds to stdout.
pub fn flush() -> Result<()> {
    BUFFERED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).flush()?;
    Ok(())
}

/// Writes bytes to stdout as they are (generated scripts).
pub fn raw(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

pub fn json(v: &serde_json::Value) -> Result<()> {
    line(&serde_json::to_string_pretty(v)?)
}

pub fn jsonl(v: &serde_json::Value) -> Result<()> {
    line(&v.to_string())
}

/// A table with a header row, sized to the terminal.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> Result<()> {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    t.set_header(header.to_vec());
    for r in rows {
        t.add_row(r);
    }
    line(&t.to_string())
}

/// "3m ago", "2h 5m", … for ages and durations in milliseconds.
pub fn human_ms(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// Milliseconds since the epoch as RFC 3339 (UTC, millisecond precision).
pub fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(human_ms(61_000), "1m 1s");
    }
}
