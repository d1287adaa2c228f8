//! Printing helpers: JSON / JSON lines / tables on stdout, times for humans.

use std::io::Write;

use anyhow::Result;
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
// One formatting of times and durations for every component (sett-store's time module).
pub use sett_store::time::{human_ms, rfc3339_ms};

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
