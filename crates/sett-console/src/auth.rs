//! Who may use the console: tokens (one, or a `--users` file of token → operator name), the
//! session cookie a token in the URL is exchanged for, and the CSRF proof a cookie-authenticated
//! POST must carry. Tokens are compared in constant time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The cookie carrying a browser session (HttpOnly, SameSite=Strict).
pub const SESSION_COOKIE: &str = "sett_session";
/// The header a cookie-authenticated POST must carry, equal to the page's CSRF token.
pub const CSRF_HEADER: &str = "x-sett-csrf";
/// Shorter tokens are refused: a token is the only credential.
pub const MIN_TOKEN_LEN: usize = 16;

/// Compares without an early exit, so the time taken does not tell how much of a guess matched.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A random token: 256 bits from the OS generator, as hex.
pub fn random_token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// Errors reading a users file.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("line {line}: expected '<token> <operator name>'")]
    Syntax { line: usize },
    #[error(
        "line {line}: the token is shorter than {MIN_TOKEN_LEN} characters; generate one with 'openssl rand -hex 32'"
    )]
    Short { line: usize },
    #[error("line {line}: the same token appears twice; give each operator their own")]
    Duplicate { line: usize },
    #[error("no users in the file: add lines '<token> <operator name>'")]
    Empty,
}

/// The accepted tokens and whose they are.
#[derive(Clone)]
pub struct Users {
    tokens: Vec<(String, String)>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print tokens.
        f.debug_struct("Users").field("names", &self.tokens.iter().map(|(_, n)| n).collect::<Vec<_>>()).finish()
    }
}

impl Users {
    /// One token, answering as `name`.
    pub fn single(token: impl Into<String>, name: impl Into<String>) -> Self {
        Self { tokens: vec![(token.into(), name.into())] }
    }

    /// A users file: one `<token> <operator name>` per line; `#` starts a comment line.
    pub fn parse(text: &str) -> Result<Self, UsersError> {
        let mut tokens: Vec<(String, String)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let n = i + 1;
            let Some((token, name)) = line.split_once(char::is_whitespace) else {
                return Err(UsersError::Syntax { line: n });
            };
            let name = name.trim();
            if name.is_empty() {
                return Err(UsersError::Syntax { line: n });
            }
            if token.len() < MIN_TOKEN_LEN {
                return Err(UsersError::Short { line: n });
            }
            if tokens.iter().any(|(t, _)| t == token) {
                return Err(UsersError::Duplicate { line: n });
            }
            tokens.push((token.to_owned(), name.to_owned()));
        }
        if tokens.is_empty() {
            return Err(UsersError::Empty);
        }
        Ok(Self { tokens })
    }

    /// The operator a token belongs to. Every token is compared, so timing does not reveal
    /// which one (or how much of one) matched.
    pub fn lookup(&self, token: &str) -> Option<&str> {
        let mut found = None;
        for (t, name) in &self.tokens {
            if ct_eq(t.as_bytes(), token.as_bytes()) {
                found = Some(name.as_str());
            }
        }
        found
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// How long a browser session lasts by default, from when its token was exchanged. The
/// lifetime is absolute (using the console does not extend it): a cookie copied off a
/// machine stops working by itself.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// The time in milliseconds since the epoch; injectable so tests can move it.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(sett_store::now_ms)
}

/// A browser session: who, the CSRF token its pages carry, and when it ends.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub csrf: String,
    pub expires_at_ms: i64,
}

/// What a session cookie is worth.
#[derive(Debug, Clone)]
pub enum Lookup {
    Valid(Session),
    /// It was a session, but its lifetime is over.
    Expired,
    Unknown,
}

/// Live sessions of this console process (they end with it, or with their lifetime).
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    lifetime: Duration,
    clock: Clock,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").field("lifetime", &self.lifetime).finish_non_exhaustive()
    }
}

impl Default for Sessions {
    fn default() -> Self {
        Self::new(SESSION_LIFETIME, system_clock())
    }
}

impl Sessions {
    pub fn new(lifetime: Duration, clock: Clock) -> Self {
        Self { map: Mutex::default(), lifetime, clock }
    }

    /// How long a session lasts.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Opens a session for `user`; returns its id (the cookie value). Sessions past their
    /// lifetime are dropped here, so the map does not grow with every login.
    pub fn open(&self, user: &str) -> String {
        let now = (self.clock)();
        let id = random_token();
        let ttl = i64::try_from(self.lifetime.as_millis()).unwrap_or(i64::MAX);
        let s = Session { user: user.to_owned(), csrf: random_token(), expires_at_ms: now.saturating_add(ttl) };
        let mut map = self.map.lock().expect("sessions lock");
        map.retain(|_, s| s.expires_at_ms > now);
        map.insert(id.clone(), s);
        id
    }

    pub fn get(&self, id: &str) -> Lookup {
        let now = (self.clock)();
        let mut map = self.map.lock().expect("sessions lock");
        match map.get(id) {
            Some(s) if s.expires_at_ms > now => Lookup::Valid(s.clone()),
            Some(_) => {
                map.remove(id);
                Lookup::Expired
            }
            None => Lookup::Unknown,
        }
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').filter_map(|kv| kv.trim().split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    #[test]
    fn sessions_end_after_their_lifetime() {
        let now = Arc::new(AtomicI64::new(1_000_000));
        let clock = now.clone();
        let s = Sessions::new(Duration::from_secs(60), Arc::new(move || clock.load(Ordering::SeqCst)));
        let id = s.open("ada");
        now.fetch_add(59_999, Ordering::SeqCst);
        assert!(matches!(s.get(&id), Lookup::Valid(_)), "valid until its last millisecond");
        now.fetch_add(1, Ordering::SeqCst);
        assert!(matches!(s.get(&id), Lookup::Expired));
        assert!(matches!(s.get(&id), Lookup::Unknown), "an expired session is forgotten");
        // Opening another session drops the expired ones nobody came back with.
        let old = s.open("bob");
        now.fetch_add(60_000, Ordering::SeqCst);
        let _ = s.open("ada");
        assert!(matches!(s.get(&old), Lookup::Unknown));
    }

    #[test]
    fn users_file() {
        let u = Users::parse("# team\n0123456789abcdef0123 Ada Lovelace\n\nfedcba9876543210fedc bob\n").unwrap();
        assert_eq!(u.len(), 2);
        assert_eq!(u.lookup("0123456789abcdef0123"), Some("Ada Lovelace"));
        assert_eq!(u.lookup("fedcba9876543210fedc"), Some("bob"));
        assert_eq!(u.lookup("0123456789abcdef012"), None);
        assert_eq!(u.lookup(""), None);
        assert!(matches!(Users::parse("short bob"), Err(UsersError::Short { line: 1 })));
        assert!(matches!(Users::parse("\n0123456789abcdef0123"), Err(UsersError::Syntax { line: 2 })));
        assert!(matches!(
            Users::parse("0123456789abcdef0123 a\n0123456789abcdef0123 b"),
            Err(UsersError::Duplicate { line: 2 })
        ));
        assert!(matches!(Users::parse("# nobody\n"), Err(UsersError::Empty)));
        assert!(!format!("{u:?}").contains("0123456789"), "Debug never shows tokens");
    }

    #[test]
    fn tokens_and_cookies() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        let t = random_token();
        assert_eq!(t.len(), 64);
        assert_ne!(t, random_token());
        assert_eq!(cookie("a=1; sett_session=xyz; b=2", SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie("a=1", SESSION_COOKIE), None);
        let s = Sessions::default();
        let id = s.open("ada");
        assert!(matches!(s.get(&id), Lookup::Valid(v) if v.user == "ada"));
        assert!(matches!(s.get("nope"), Lookup::Unknown));
    }
}
