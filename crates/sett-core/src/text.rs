//! Pure text helpers for showing ids and texts to people, shared by the CLI, the console, the
//! MCP server and the notifications: an id's short display form, git-style unique prefixes of a
//! set of ids, and one-line excerpts.

use std::collections::HashMap;

/// An id's display form: the first 13 characters (`0190c2b4-7d3e`, the creation millisecond of a
/// UUID v7, itself a valid short id); other strings unchanged. Eight characters are not enough:
/// v7 ids created within the same minute share them.
pub fn short(id: &str) -> &str {
    if id.len() == 36 && id.as_bytes()[8] == b'-' { &id[..13] } else { id }
}

/// The first line of `text`, cut to `max` characters.
pub fn excerpt(text: &str, max: usize) -> String {
    let first = text.lines().next().unwrap_or("").trim();
    let multi = text.trim().lines().nth(1).is_some();
    if first.chars().count() > max {
        format!("{}…", first.chars().take(max.saturating_sub(1)).collect::<String>())
    } else if multi {
        format!("{first} …")
    } else {
        first.to_owned()
    }
}

/// The shortest prefix (in simple hex, at least `min` characters) that tells each of `ids`
/// apart from every other id of the set, git-style. UUID v7 ids begin with their creation time,
/// so ids created within a minute share their first 8 characters: a fixed-width short id would
/// be ambiguous exactly when it is needed.
pub fn unique_prefixes<T>(ids: &[T], min: usize) -> HashMap<T, String>
where
    T: Copy + Eq + Ord + std::hash::Hash + std::fmt::Display,
{
    let mut hex: Vec<(String, T)> = ids.iter().map(|id| (id.to_string().replace('-', ""), *id)).collect();
    hex.sort();
    hex.dedup();
    let lcp = |a: &str, b: &str| a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let mut out = HashMap::with_capacity(hex.len());
    for i in 0..hex.len() {
        let prev = if i > 0 { lcp(&hex[i - 1].0, &hex[i].0) } else { 0 };
        let next = hex.get(i + 1).map_or(0, |n| lcp(&n.0, &hex[i].0));
        let len = (prev.max(next) + 1).max(min).min(32);
        out.insert(hex[i].1, display_prefix(&hex[i].1.to_string(), len));
    }
    out
}

/// The first `hex_len` hex digits of a canonical id, with its hyphens (`0190c2b4-7d3e`), so the
/// short form reads like the start of the id it abbreviates.
fn display_prefix(canonical: &str, hex_len: usize) -> String {
    let mut seen = 0;
    let end = canonical
        .char_indices()
        .find(|(_, c)| {
            if *c != '-' {
                seen += 1;
            }
            seen > hex_len
        })
        .map_or(canonical.len(), |(i, _)| i);
    canonical[..end].trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0190c2b4-7d3e-7a1b-9c2d-3e4f5a6b7c8d";

    #[test]
    fn excerpts_and_short_ids() {
        assert_eq!(excerpt("abcdef", 4), "abc…");
        assert_eq!(excerpt("first\nsecond", 20), "first …");
        assert_eq!(short(A), "0190c2b4-7d3e");
        assert_eq!(short("user"), "user");
    }

    #[test]
    fn unique_prefixes_tell_ids_apart() {
        let ids = [
            "0190c2b4-7d3e-7a1b-9c2d-3e4f5a6b7c8d",
            "0190c2b4-7d3f-7a1b-9c2d-3e4f5a6b7c8d",
            "ffffffff-7d3f-7a1b-9c2d-3e4f5a6b7c8d",
        ];
        let p = unique_prefixes(&[ids[0], ids[1], ids[2], ids[0]], 8);
        assert_eq!(p.len(), 3);
        assert_eq!(p[ids[0]], "0190c2b4-7d3e");
        assert_eq!(p[ids[1]], "0190c2b4-7d3f");
        assert_eq!(p[ids[2]], "ffffffff");
    }
}
