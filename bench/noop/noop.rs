//! `sett-noop`: the benchmark's no-op agent. Prints its first argument (the tool output JSON) and
//! exits; it never reads stdin. `cargo xtask bench` compiles it with plain `rustc` as a static
//! executable, so a tool run costs one exec and no dynamic loading.

use std::io::Write;

fn main() {
    let out = std::env::args().nth(1).unwrap_or_default();
    let _ = std::io::stdout().write_all(out.as_bytes());
}
