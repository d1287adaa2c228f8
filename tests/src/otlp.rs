//! The OTLP trace receiver of the end-to-end tests (`tests/otlp/receiver.py`, which decodes the
//! protobuf with the OpenTelemetry project's own definitions and appends each span to a file as
//! one JSON line), and the spans as it wrote them.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::KillOnDrop;

/// One span as the receiver decoded it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Span {
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub status: String,
    pub attributes: BTreeMap<String, String>,
    pub links: Vec<String>,
}

impl Span {
    pub fn attr(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

/// The OTLP receiver on a free port of `host` (`127.0.0.1`; `0.0.0.0` for senders in
/// containers), writing the spans it decodes to `out`; returns it and its port.
pub fn receiver(out: &Path, host: &str) -> (KillOnDrop, u16) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("otlp/receiver.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg("--out")
        .arg(out)
        .args(["--host", host])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 tests/otlp/receiver.py (pip install opentelemetry-proto; .ci/run installs it)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("the receiver's first line");
    let port = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the receiver did not start (pip install opentelemetry-proto): {line:?}"));
    (KillOnDrop(child), port)
}

/// Every span the receiver wrote to `out` so far.
pub fn spans(out: &Path) -> Vec<Span> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a span line ({e}): {l}"))).collect()
}
