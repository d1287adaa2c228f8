//! Whether the containers' user can use the workspace, checked on the host before anything is
//! started: a container whose user cannot read its bind-mounted workspace dies at start, before
//! its daemon writes a log line, which leaves the operator nothing to go on.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The uid and gid of a Docker `user` setting (`uid[:gid]`); a name (not numeric) gives `None`:
/// it is resolved inside the image, so the host cannot check it.
pub fn numeric_user(user: &str) -> Option<(u32, Option<u32>)> {
    let mut parts = user.split(':');
    let uid = parts.next()?.parse().ok()?;
    let gid = match parts.next() {
        Some(g) => Some(g.parse().ok()?),
        None => None,
    };
    Some((uid, gid))
}

/// Whether `uid`/`gid` may access `path` with the permission bits `want` (4 read, 2 write,
/// 1 execute/search), by the owner, group and other bits of its mode (as the kernel decides
/// for a process with no supplementary groups; root may do anything).
fn allowed(meta: &std::fs::Metadata, uid: u32, gid: Option<u32>, want: u32) -> bool {
    if uid == 0 {
        return true;
    }
    let mode = meta.mode();
    let bits = if meta.uid() == uid {
        (mode >> 6) & 7
    } else if gid == Some(meta.gid()) {
        (mode >> 3) & 7
    } else {
        mode & 7
    };
    bits & want == want
}

/// Checks that the container user `user` can read the workspace and its sett.yml (and write
/// the workspace when `write` — a `workspace: {mode: rw}` agent). The error names the path,
/// the uid and the fix.
pub fn check_workspace_access(workspace: &Path, config: &Path, user: &str, write: bool) -> Result<(), String> {
    let Some((uid, gid)) = numeric_user(user) else { return Ok(()) };
    let fix = |what: &str, p: &Path| {
        let owner = match gid {
            Some(g) => format!("{uid}:{g}"),
            None => uid.to_string(),
        };
        format!(
            "the containers run as uid {uid}, which cannot {what} {path}. Fix: give it access (e.g. `chown -R {owner} {path}` \
             or `chmod -R o+{bits} {path}`), or run the containers as a user that has it: SETT_DOCKER_USER=<uid>:<gid> sett up",
            path = p.display(),
            bits = if what.contains("write") { "rwX" } else { "rX" },
        )
    };
    let meta = std::fs::metadata(workspace).map_err(|e| format!("cannot inspect {}: {e}", workspace.display()))?;
    if !allowed(&meta, uid, gid, 4 | 1) {
        return Err(fix("read", workspace));
    }
    if write && !allowed(&meta, uid, gid, 2 | 1) {
        return Err(fix("write (an agent has workspace: {mode: rw})", workspace));
    }
    if let Ok(m) = std::fs::metadata(config)
        && !allowed(&m, uid, gid, 4)
    {
        return Err(fix("read", config));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn numeric_users_only() {
        assert_eq!(numeric_user("10001:10001"), Some((10001, Some(10001))));
        assert_eq!(numeric_user("1000"), Some((1000, None)));
        assert_eq!(numeric_user("sett"), None);
    }

    #[test]
    fn a_workspace_the_user_cannot_read_or_write_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path();
        let config = ws.join("sett.yml");
        std::fs::write(&config, "x").unwrap();
        let owner = std::fs::metadata(ws).unwrap().uid();
        let other = if owner == 4242 { "4343:4343" } else { "4242:4242" };
        std::fs::set_permissions(ws, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = check_workspace_access(ws, &config, other, false).unwrap_err();
        let uid = other.split(':').next().unwrap();
        assert!(e.contains(&format!("uid {uid}")) && e.contains(&ws.display().to_string()), "{e}");
        assert!(e.contains("chown -R") && e.contains("SETT_DOCKER_USER"), "{e}");
        // Readable by others: reading is fine, writing is not.
        std::fs::set_permissions(ws, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(check_workspace_access(ws, &config, other, false), Ok(()));
        let e = check_workspace_access(ws, &config, other, true).unwrap_err();
        assert!(e.contains("cannot write"), "{e}");
        // The owner may; so may root; an unreadable sett.yml is named.
        assert_eq!(check_workspace_access(ws, &config, &format!("{owner}:0"), true), Ok(()));
        assert_eq!(check_workspace_access(ws, &config, "0:0", true), Ok(()));
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = check_workspace_access(ws, &config, other, false).unwrap_err();
        assert!(e.contains("sett.yml"), "{e}");
    }
}
