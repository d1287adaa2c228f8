//! Locating errors for `sett config check`: the line of a key path in the YAML text, and
//! setting a key aside so the rest of the file is checked again.

use super::ConfigError;

/// One error of `sett config check`: the error and the 1-based line of the key it names
/// (or of its nearest enclosing key written in block style).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub line: Option<usize>,
    pub error: ConfigError,
}

/// Splits `agents.Coder.environment[1]` into `agents`, `Coder`, `environment`, `[1]`.
pub(super) fn path_segments(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in path.split('.') {
        match part.find('[') {
            Some(i) => {
                if i > 0 {
                    out.push(part[..i].to_owned());
                }
                out.extend(part[i..].split_inclusive(']').map(str::to_owned));
            }
            None => out.push(part.to_owned()),
        }
    }
    out
}

/// Whether the key at `path` is `inner` or encloses it (`""` encloses everything).
pub(super) fn encloses(path: &str, inner: &str) -> bool {
    path.is_empty() || inner == path || inner.starts_with(&format!("{path}.")) || inner.starts_with(&format!("{path}["))
}

/// `agents.Coder.environment[1]` → `agents.Coder.environment` → `agents.Coder` → … → `""`.
pub(super) fn parent_path(path: &str) -> String {
    match path.rfind(['.', '[']) {
        Some(i) => path[..i].to_owned(),
        None => String::new(),
    }
}

/// Removes the value at `path` from `value`; false when there is nothing there to remove.
pub(super) fn remove_path(value: &mut serde_json::Value, path: &str) -> bool {
    let segs = path_segments(path);
    let Some((last, parents)) = segs.split_last() else { return false };
    let mut cur = value;
    for seg in parents {
        let next = match seg.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            Some(i) => i.parse::<usize>().ok().and_then(|i| cur.get_mut(i)),
            None => cur.get_mut(seg.as_str()),
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    match last.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        Some(i) => match (cur.as_array_mut(), i.parse::<usize>()) {
            (Some(a), Ok(i)) if i < a.len() => {
                a.remove(i);
                true
            }
            _ => false,
        },
        None => cur.as_object_mut().is_some_and(|o| o.remove(last.as_str()).is_some()),
    }
}

/// The line of `path` in block-style YAML `text`: that of the longest prefix of the path
/// written as a `key:` line (flow-style values such as `{type: x}` point at their key).
pub(super) fn key_line(text: &str, path: &str) -> Option<usize> {
    let want: Vec<String> = path_segments(path).into_iter().filter(|s| !s.starts_with('[')).collect();
    if want.is_empty() {
        return None;
    }
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut best: Option<(usize, usize)> = None;
    for (n, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') {
            continue;
        }
        let indent = raw.len() - trimmed.len();
        let Some((key, _)) = trimmed.split_once(':') else { continue };
        let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
        if key.is_empty() || key.contains(' ') || key.contains('{') {
            continue;
        }
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key.to_owned()));
        let depth = stack.len();
        if depth <= want.len()
            && stack.iter().zip(&want).all(|((_, k), w)| k == w)
            && best.is_none_or(|(d, _)| depth > d)
        {
            best = Some((depth, n + 1));
        }
    }
    best.map(|(_, line)| line)
}

/// The line in a YAML syntax error message (`… at line 3, column 5`), if it names one.
pub(super) fn yaml_error_line(message: &str) -> Option<usize> {
    let at = message.find("line ")?;
    message[at + 5..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// YAML syntax only: `text` as a JSON value, or the error with its line and column.
pub(super) fn yaml_value(file: &str, text: &str) -> Result<serde_json::Value, ConfigError> {
    serde_saphyr::from_str(text).map_err(|e| ConfigError {
        file: file.to_owned(),
        key_path: String::new(),
        message: format!("invalid YAML: {e}"),
        fix: "correct the YAML syntax at the position shown".to_owned(),
    })
}
