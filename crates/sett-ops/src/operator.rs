//! Who is acting: the operator identity written into audit records (`answered_by`, the destroy
//! audit, ...). Environment variables such as `USER` are not trusted for this: cron, systemd,
//! CI and containers often leave them unset or inherited from someone else.

/// The operator identity: `$SETT_OPERATOR` when set and non-empty, else the account name of the
/// effective uid from the password database, else `uid:<n>`. Never `unknown`.
pub fn current() -> String {
    resolve(std::env::var("SETT_OPERATOR").ok())
}

/// [`current`] with the `SETT_OPERATOR` value passed in (so callers and tests need not touch
/// the process environment).
pub fn resolve(sett_operator: Option<String>) -> String {
    if let Some(name) = sett_operator.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
        return name;
    }
    let uid = nix::unistd::geteuid();
    account_of(uid.as_raw()).unwrap_or_else(|| format!("uid:{uid}"))
}

/// The password-database name of `uid`, if it has one (a container user with an arbitrary uid,
/// e.g. `docker run --user 12345`, has none).
pub fn account_of(uid: u32) -> Option<String> {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) if !user.name.is_empty() => Some(user.name),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sett_operator_wins_and_blank_is_ignored() {
        assert_eq!(resolve(Some("alice".into())), "alice");
        assert_eq!(resolve(Some("  ".into())), resolve(None));
    }

    #[test]
    fn falls_back_to_the_password_database_never_unknown() {
        let uid = nix::unistd::geteuid().as_raw();
        let got = resolve(None);
        assert_ne!(got, "unknown");
        // Root exists in every password database; the fallback is the account, not `USER`.
        match account_of(uid) {
            Some(name) => assert_eq!(got, name),
            None => assert_eq!(got, format!("uid:{uid}")),
        }
        assert_eq!(account_of(0).as_deref(), Some("root"));
        // A uid nobody has: no account.
        assert_eq!(account_of(4_000_000_000), None);
    }
}
