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

/// What a signed-in user may do. Each role includes the ones before it: a `viewer` reads, an
/// `answerer` also answers questions, an `operator` also acts on workflows (cancel, pause,
/// resume, retry, fork).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Answerer,
    Operator,
}

impl Role {
    /// Every role, least first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Answerer, Role::Operator];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Answerer => "answerer",
            Role::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether this role may answer questions.
    pub fn may_answer(self) -> bool {
        self >= Role::Answerer
    }

    /// Whether this role may act on workflows (cancel, pause, resume, retry, fork).
    pub fn may_act(self) -> bool {
        self >= Role::Operator
    }

    /// `Ok` when this role includes `needed`; otherwise the refusal to show, naming the role
    /// needed for `what` (e.g. "cancelling a workflow") and how to get it.
    pub fn require(self, needed: Role, what: &str) -> Result<(), String> {
        if self >= needed {
            return Ok(());
        }
        Err(format!(
            "{what} needs the role '{needed}' (or higher); you are signed in as '{self}'. Ask whoever runs this server to give your token 'role={needed}' in its users file"
        ))
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The role of a users-file line that names none (what every token could do before roles).
pub const DEFAULT_ROLE: Role = Role::Answerer;

/// Who a token belongs to: the operator name answers and actions are recorded under, the role,
/// and the groups (for routing questions to people).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    name: String,
    role: Role,
    groups: Vec<String>,
}

impl User {
    pub fn new(name: impl Into<String>, role: Role, groups: Vec<String>) -> Self {
        Self { name: name.into(), role, groups }
    }

    /// The operator name (may contain spaces).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The groups named by `groups=`, in the file's order; empty when none.
    pub fn groups(&self) -> &[String] {
        &self.groups
    }
}

/// The options a users-file line may end with, for error messages.
const OPTIONS_HELP: &str = "role=viewer|answerer|operator and groups=g1,g2";

/// Errors reading a users file.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("line {line}: expected '<token> <operator name> [role=viewer|answerer|operator] [groups=g1,g2]'")]
    Syntax { line: usize },
    #[error(
        "line {line}: the token is shorter than {MIN_TOKEN_LEN} characters; generate one with 'openssl rand -hex 32'"
    )]
    Short { line: usize },
    #[error("line {line}: the same token appears twice; give each operator their own")]
    Duplicate { line: usize },
    #[error("line {line}: unknown option '{option}'; the options are {OPTIONS_HELP}")]
    UnknownOption { line: usize, option: String },
    #[error("line {line}: unknown role '{role}'; the roles are viewer, answerer and operator")]
    UnknownRole { line: usize, role: String },
    #[error("line {line}: '{option}' is given twice; give each option once")]
    RepeatedOption { line: usize, option: String },
    #[error("line {line}: 'groups={value}' has an empty group name; write groups=g1,g2")]
    EmptyGroup { line: usize, value: String },
    #[error("line {line}: the option '{option}' is inside the name; options go after the name ({OPTIONS_HELP})")]
    OptionInName { line: usize, option: String },
    #[error("no users in the file: add lines '<token> <operator name>'")]
    Empty,
}

/// The accepted tokens and whose they are.
#[derive(Clone)]
pub struct Users {
    tokens: Vec<(String, User)>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print tokens.
        f.debug_struct("Users").field("users", &self.tokens.iter().map(|(_, u)| u).collect::<Vec<_>>()).finish()
    }
}

/// Whether `word` is a `key=value` option word.
fn option_of(word: &str) -> Option<(&str, &str)> {
    word.split_once('=')
}

/// The name and options of a line's text after its token.
fn parse_user(rest: &str, line: usize) -> Result<User, UsersError> {
    // Options are the trailing `key=value` words; everything before them is the name.
    let mut name = rest.trim();
    let mut options = Vec::new();
    while let Some((head, last)) = name.rsplit_once(char::is_whitespace) {
        if option_of(last).is_none() {
            break;
        }
        options.push(last);
        name = head.trim_end();
    }
    if name.is_empty() || option_of(name).is_some_and(|(k, _)| k == "role" || k == "groups") {
        return Err(UsersError::Syntax { line });
    }
    if let Some(word) =
        name.split_whitespace().find(|w| option_of(w).is_some_and(|(k, _)| k == "role" || k == "groups"))
    {
        return Err(UsersError::OptionInName { line, option: word.to_owned() });
    }
    let (mut role, mut groups) = (None, None);
    for word in options.into_iter().rev() {
        let (key, value) = option_of(word).expect("an option word");
        match key {
            "role" => {
                if role.is_some() {
                    return Err(UsersError::RepeatedOption { line, option: key.to_owned() });
                }
                role =
                    Some(Role::parse(value).ok_or_else(|| UsersError::UnknownRole { line, role: value.to_owned() })?);
            }
            "groups" => {
                if groups.is_some() {
                    return Err(UsersError::RepeatedOption { line, option: key.to_owned() });
                }
                let mut list: Vec<String> = Vec::new();
                for g in value.split(',') {
                    if g.is_empty() {
                        return Err(UsersError::EmptyGroup { line, value: value.to_owned() });
                    }
                    if !list.iter().any(|have| have == g) {
                        list.push(g.to_owned());
                    }
                }
                groups = Some(list);
            }
            _ => return Err(UsersError::UnknownOption { line, option: word.to_owned() }),
        }
    }
    Ok(User::new(name, role.unwrap_or(DEFAULT_ROLE), groups.unwrap_or_default()))
}

impl Users {
    /// One token, answering as `name` with the default role ([`DEFAULT_ROLE`]: read + answer).
    pub fn single(token: impl Into<String>, name: impl Into<String>) -> Self {
        Self::single_with_role(token, name, DEFAULT_ROLE)
    }

    /// One token, as `name` with `role` (`sett console --allow-actions` makes it `operator`).
    pub fn single_with_role(token: impl Into<String>, name: impl Into<String>, role: Role) -> Self {
        Self { tokens: vec![(token.into(), User::new(name, role, Vec::new()))] }
    }

    /// A users file: one `<token> <operator name> [role=…] [groups=…]` per line; `#` starts a
    /// comment line. The name may contain spaces; the trailing `key=value` words are options.
    /// A line without `role=` gets [`DEFAULT_ROLE`].
    pub fn parse(text: &str) -> Result<Self, UsersError> {
        let mut tokens: Vec<(String, User)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let n = i + 1;
            let Some((token, rest)) = line.split_once(char::is_whitespace) else {
                return Err(UsersError::Syntax { line: n });
            };
            let user = parse_user(rest, n)?;
            if token.len() < MIN_TOKEN_LEN {
                return Err(UsersError::Short { line: n });
            }
            if tokens.iter().any(|(t, _)| t == token) {
                return Err(UsersError::Duplicate { line: n });
            }
            tokens.push((token.to_owned(), user));
        }
        if tokens.is_empty() {
            return Err(UsersError::Empty);
        }
        Ok(Self { tokens })
    }

    /// The user a token belongs to. Every token is compared, so timing does not reveal which
    /// one (or how much of one) matched.
    pub fn lookup(&self, token: &str) -> Option<&User> {
        let mut found = None;
        for (t, user) in &self.tokens {
            if ct_eq(t.as_bytes(), token.as_bytes()) {
                found = Some(user);
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

/// A browser session: who (name, role, groups), the CSRF token its pages carry, and when it
/// ends.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub role: Role,
    pub groups: Vec<String>,
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
    pub fn open(&self, user: &User) -> String {
        let now = (self.clock)();
        let id = random_token();
        let ttl = i64::try_from(self.lifetime.as_millis()).unwrap_or(i64::MAX);
        let s = Session {
            user: user.name().to_owned(),
            role: user.role(),
            groups: user.groups().to_vec(),
            csrf: random_token(),
            expires_at_ms: now.saturating_add(ttl),
        };
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
        let id = s.open(&User::new("ada", Role::Answerer, vec![]));
        now.fetch_add(59_999, Ordering::SeqCst);
        assert!(matches!(s.get(&id), Lookup::Valid(_)), "valid until its last millisecond");
        now.fetch_add(1, Ordering::SeqCst);
        assert!(matches!(s.get(&id), Lookup::Expired));
        assert!(matches!(s.get(&id), Lookup::Unknown), "an expired session is forgotten");
        // Opening another session drops the expired ones nobody came back with.
        let old = s.open(&User::new("bob", Role::Viewer, vec![]));
        now.fetch_add(60_000, Ordering::SeqCst);
        let _ = s.open(&User::new("ada", Role::Answerer, vec![]));
        assert!(matches!(s.get(&old), Lookup::Unknown));
    }

    #[test]
    fn users_file() {
        let u = Users::parse("# team\n0123456789abcdef0123 Ada Lovelace\n\nfedcba9876543210fedc bob\n").unwrap();
        assert_eq!(u.len(), 2);
        assert_eq!(u.lookup("0123456789abcdef0123").map(User::name), Some("Ada Lovelace"));
        assert_eq!(u.lookup("fedcba9876543210fedc").map(User::name), Some("bob"));
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

    const T1: &str = "0123456789abcdef0123";
    const T2: &str = "fedcba9876543210fedc";

    fn one(line: &str) -> Result<User, UsersError> {
        Users::parse(line).map(|u| u.tokens[0].1.clone())
    }

    #[test]
    fn users_file_roles_and_groups() {
        let u = Users::parse(&format!(
            "{T1} Ada  Lovelace role=operator groups=oncall,payments\n{T2} bob groups=support role=viewer\n"
        ))
        .unwrap();
        let ada = u.lookup(T1).unwrap();
        assert_eq!(ada.name(), "Ada  Lovelace", "the name is kept as written, spaces and all");
        assert_eq!(ada.role(), Role::Operator);
        assert_eq!(ada.groups(), ["oncall", "payments"]);
        let bob = u.lookup(T2).unwrap();
        assert_eq!((bob.name(), bob.role(), bob.groups()), ("bob", Role::Viewer, &["support".to_owned()][..]));
        // No role: answerer, as every token was before roles; no groups: none.
        let plain = one(&format!("{T1} Grace Hopper")).unwrap();
        assert_eq!((plain.name(), plain.role(), plain.groups().len()), ("Grace Hopper", Role::Answerer, 0));
        assert_eq!(one(&format!("{T1} c role=answerer")).unwrap().role(), Role::Answerer);
        // A word with '=' that is not an option, in the middle of a name, stays part of it.
        assert_eq!(one(&format!("{T1} a=b c")).unwrap().name(), "a=b c");
        assert_eq!(one(&format!("{T1} ops groups=a,a,b")).unwrap().groups(), ["a", "b"]);
    }

    #[test]
    fn users_file_option_errors_name_the_line_and_the_allowed_values() {
        let text = format!("# team\n{T1} ada role=admin");
        let e = Users::parse(&text).unwrap_err();
        assert!(matches!(&e, UsersError::UnknownRole { line: 2, role } if role == "admin"));
        let msg = e.to_string();
        assert!(msg.contains("line 2") && msg.contains("viewer, answerer and operator"), "{msg}");
        let e = Users::parse(&format!("{T1} ada colour=red")).unwrap_err();
        assert!(matches!(&e, UsersError::UnknownOption { line: 1, option } if option == "colour=red"));
        assert!(e.to_string().contains("role=viewer|answerer|operator and groups=g1,g2"), "{e}");
        assert!(matches!(
            Users::parse(&format!("{T1} ada role=viewer role=operator")),
            Err(UsersError::RepeatedOption { line: 1, .. })
        ));
        assert!(matches!(Users::parse(&format!("{T1} ada groups=a,,b")), Err(UsersError::EmptyGroup { line: 1, .. })));
        assert!(matches!(Users::parse(&format!("{T1} ada groups=")), Err(UsersError::EmptyGroup { line: 1, .. })));
        assert!(matches!(
            Users::parse(&format!("{T1} ada role=operator lovelace")),
            Err(UsersError::OptionInName { line: 1, .. })
        ));
        // Options without a name.
        assert!(matches!(Users::parse(&format!("{T1} role=operator")), Err(UsersError::Syntax { line: 1 })));
        assert!(matches!(Users::parse(&format!("{T1} role=operator groups=a")), Err(UsersError::Syntax { line: 1 })));
    }

    #[test]
    fn roles_include_the_lesser_ones() {
        assert!(Role::Operator.may_act() && Role::Operator.may_answer());
        assert!(!Role::Answerer.may_act() && Role::Answerer.may_answer());
        assert!(!Role::Viewer.may_act() && !Role::Viewer.may_answer());
        assert!(Role::Operator.require(Role::Answerer, "answering").is_ok());
        let no = Role::Answerer.require(Role::Operator, "cancelling a workflow").unwrap_err();
        assert!(no.contains("cancelling a workflow needs the role 'operator'") && no.contains("'answerer'"), "{no}");
        assert_eq!(Users::single(T1, "ada").lookup(T1).unwrap().role(), Role::Answerer);
        assert_eq!(Users::single_with_role(T1, "ada", Role::Operator).lookup(T1).unwrap().role(), Role::Operator);
        assert_eq!(serde_json::to_value(Role::Viewer).unwrap(), "viewer");
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
        let id = s.open(&User::new("ada", Role::Operator, vec!["oncall".into()]));
        assert!(
            matches!(s.get(&id), Lookup::Valid(v) if v.user == "ada" && v.role == Role::Operator && v.groups == ["oncall"])
        );
        assert!(matches!(s.get("nope"), Lookup::Unknown));
    }
}
