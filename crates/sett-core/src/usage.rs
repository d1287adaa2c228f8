//! What an agent's run cost (docs/agents.md, "Usage"): the model, its input and output tokens,
//! the cost as an exact decimal in a stated currency, and extra counters; the strict parser of
//! the tool contract's `usage` object (every problem named), and exact totals over many runs.
//! Amounts are fixed-point decimals, never floats: a sum of a thousand `0.001` is `1`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Fraction digits an [`Amount`] keeps exactly.
pub const AMOUNT_SCALE: u32 = 18;
/// Integer digits an [`Amount`] may have (a run costing more is a mistake, not a bill).
const AMOUNT_INTEGER_DIGITS: usize = 12;
/// The longest model name kept (longer is refused: it is a label, not a log line).
pub const MODEL_MAX_CHARS: usize = 200;
/// How many extra counters one run may report.
pub const COUNTERS_MAX: usize = 32;
/// The longest counter name.
const COUNTER_NAME_MAX: usize = 64;

const UNIT: u128 = 10u128.pow(AMOUNT_SCALE);

/// A non-negative decimal amount of money, exact to [`AMOUNT_SCALE`] fraction digits. Written
/// and read as a decimal string (`"0.0042"`); its text is canonical (no trailing fraction zeros,
/// no leading zeros, `"0"` for nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(u128);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a decimal amount: write digits with an optional fraction, as a string (\"0.0042\"), at most {AMOUNT_INTEGER_DIGITS} integer and {AMOUNT_SCALE} fraction digits, not negative"
)]
pub struct BadAmount(pub String);

impl Amount {
    pub const ZERO: Amount = Amount(0);

    /// The sum, saturating (a total beyond 10^20 is no longer exact, and no longer plausible).
    pub fn saturating_add(self, other: Amount) -> Amount {
        Amount(self.0.saturating_add(other.0))
    }

    /// The amount in billionths of its unit, rounded down (saturating): the integer the cost
    /// metric counts (Prometheus counters here are integers).
    pub fn nanos(self) -> u64 {
        u64::try_from(self.0 / 10u128.pow(AMOUNT_SCALE - 9)).unwrap_or(u64::MAX)
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl FromStr for Amount {
    type Err = BadAmount;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadAmount(s.to_owned());
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty()
            || int.len() > AMOUNT_INTEGER_DIGITS
            || !digits(int)
            || !digits(frac)
            || frac.len() > AMOUNT_SCALE as usize
            || (s.contains('.') && frac.is_empty())
        {
            return Err(bad());
        }
        let int: u128 = int.parse().map_err(|_| bad())?;
        let frac_units: u128 = if frac.is_empty() {
            0
        } else {
            frac.parse::<u128>().map_err(|_| bad())? * 10u128.pow(AMOUNT_SCALE - frac.len() as u32)
        };
        Ok(Amount(int * UNIT + frac_units))
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (int, frac) = (self.0 / UNIT, self.0 % UNIT);
        if frac == 0 {
            return write!(f, "{int}");
        }
        let frac = format!("{frac:018}");
        write!(f, "{int}.{}", frac.trim_end_matches('0'))
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A currency code: 3 to 8 characters, an upper-case letter then upper-case letters or digits
/// (ISO 4217 codes such as `USD`, `EUR`, or a unit of your own such as `CREDITS`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Currency(String);

impl Currency {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = (3..=8).contains(&s.len())
            && s.as_bytes()[0].is_ascii_uppercase()
            && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "{s:?} is not a currency code: 3 to 8 upper-case letters or digits, starting with a letter (\"USD\", \"EUR\")"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Currency::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A cost: an exact amount in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    pub amount: Amount,
    pub currency: Currency,
}

/// What one agent run reported about its cost. Stored in the artifact's `usage` field (as this
/// type's JSON text) and covered by the artifact's ledger hash.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
    /// Anything else the agent counts (`cache_read_tokens`, `tool_calls`, …), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, u64>,
}

impl Usage {
    /// Nothing reported (`"usage": {}`): not stored.
    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }

    /// Input plus output tokens.
    pub fn tokens(&self) -> u64 {
        self.input_tokens.unwrap_or(0).saturating_add(self.output_tokens.unwrap_or(0))
    }

    /// Reads the tool contract's `usage` object, strictly: every problem is listed (one per line
    /// in the error), nothing is dropped silently. `null` and `{}` report nothing.
    pub fn from_tool_json(value: &Value) -> Result<Option<Usage>, String> {
        let map = match value {
            Value::Null => return Ok(None),
            Value::Object(map) => map,
            other => return Err(format!("must be an object such as {EXAMPLE}, got {}", kind(other))),
        };
        let mut problems = Vec::new();
        let mut usage = Usage::default();
        for (key, v) in map {
            match key.as_str() {
                "model" => match v {
                    Value::String(s) if s.trim().is_empty() => problems.push("model: must not be empty".to_owned()),
                    Value::String(s) if s.chars().count() > MODEL_MAX_CHARS => {
                        problems.push(format!("model: at most {MODEL_MAX_CHARS} characters"))
                    }
                    Value::String(s) if s.chars().any(char::is_control) => {
                        problems.push("model: must not contain control characters".to_owned())
                    }
                    Value::String(s) => usage.model = Some(s.clone()),
                    Value::Null => {}
                    other => problems.push(format!("model: must be a string, got {}", kind(other))),
                },
                "input_tokens" => usage.input_tokens = count(key, v, &mut problems),
                "output_tokens" => usage.output_tokens = count(key, v, &mut problems),
                "cost" => usage.cost = cost(v, &mut problems),
                "counters" => match v {
                    Value::Null => {}
                    Value::Object(counters) => {
                        if counters.len() > COUNTERS_MAX {
                            problems.push(format!("counters: at most {COUNTERS_MAX} counters"));
                        }
                        for (name, n) in counters.iter().take(COUNTERS_MAX) {
                            let path = format!("counters.{name}");
                            if !valid_counter_name(name) {
                                problems.push(format!(
                                    "{path}: a counter name is a lower-case letter, then lower-case letters, digits or '_' (at most {COUNTER_NAME_MAX})"
                                ));
                            } else if let Some(n) = count(&path, n, &mut problems) {
                                usage.counters.insert(name.clone(), n);
                            }
                        }
                    }
                    other => problems.push(format!(
                        "counters: must be an object of names to non-negative integers, got {}",
                        kind(other)
                    )),
                },
                "cost_usd" => problems.push(
                    "cost_usd: not accepted (a float loses cents); write \"cost\": {\"amount\": \"0.0042\", \"currency\": \"USD\"}"
                        .to_owned(),
                ),
                other => problems.push(format!(
                    "{other}: unknown field; expected model, input_tokens, output_tokens, cost, counters"
                )),
            }
        }
        if !problems.is_empty() {
            return Err(problems.join("\n"));
        }
        Ok((!usage.is_empty()).then_some(usage))
    }
}

/// A minimal valid `usage`, quoted in errors.
const EXAMPLE: &str =
    r#"{"model": "m", "input_tokens": 1200, "output_tokens": 300, "cost": {"amount": "0.0042", "currency": "USD"}}"#;

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn count(path: &str, v: &Value, problems: &mut Vec<String>) -> Option<u64> {
    match v {
        Value::Null => None,
        Value::Number(n) if n.as_u64().is_some() => n.as_u64(),
        other => {
            problems.push(format!("{path}: must be a non-negative integer, got {}", shown(other)));
            None
        }
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        other => kind(other).to_owned(),
    }
}

fn cost(v: &Value, problems: &mut Vec<String>) -> Option<Cost> {
    let map = match v {
        Value::Null => return None,
        Value::Object(map) => map,
        other => {
            problems.push(format!(
                "cost: must be an object {{\"amount\": \"0.0042\", \"currency\": \"USD\"}}, got {}",
                shown(other)
            ));
            return None;
        }
    };
    let before = problems.len();
    if let Some(extra) = map.keys().find(|k| !matches!(k.as_str(), "amount" | "currency")) {
        problems.push(format!("cost.{extra}: unknown field; expected amount, currency"));
    }
    let amount = match map.get("amount") {
        Some(Value::String(s)) => s.parse::<Amount>().map_err(|e| problems.push(format!("cost.amount: {e}"))).ok(),
        Some(Value::Number(n)) => {
            problems
                .push(format!("cost.amount: must be a decimal string (\"{n}\"), not a number: a float loses cents"));
            None
        }
        Some(other) => {
            problems.push(format!("cost.amount: must be a decimal string, got {}", kind(other)));
            None
        }
        None => {
            problems.push("cost.amount: required (a decimal string such as \"0.0042\")".to_owned());
            None
        }
    };
    let currency = match map.get("currency") {
        Some(Value::String(s)) => Currency::parse(s).map_err(|e| problems.push(format!("cost.currency: {e}"))).ok(),
        Some(other) => {
            problems.push(format!("cost.currency: must be a string such as \"USD\", got {}", kind(other)));
            None
        }
        None => {
            problems
                .push("cost.currency: required (such as \"USD\"); a cost without a currency means nothing".to_owned());
            None
        }
    };
    match (amount, currency) {
        (Some(amount), Some(currency)) if problems.len() == before => Some(Cost { amount, currency }),
        _ => None,
    }
}

fn valid_counter_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= COUNTER_NAME_MAX
        && name.as_bytes()[0].is_ascii_lowercase()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Exact totals over many runs: tokens, cost per currency, counters, and how many runs reported
/// usage.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UsageTotals {
    /// Runs (artifacts) that reported usage.
    pub runs: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Amounts by currency (a sum across currencies would mean nothing).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cost: BTreeMap<Currency, Amount>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, u64>,
}

impl UsageTotals {
    pub fn add(&mut self, u: &Usage) {
        self.runs += 1;
        self.input_tokens = self.input_tokens.saturating_add(u.input_tokens.unwrap_or(0));
        self.output_tokens = self.output_tokens.saturating_add(u.output_tokens.unwrap_or(0));
        if let Some(c) = &u.cost {
            let sum = self.cost.entry(c.currency.clone()).or_default();
            *sum = sum.saturating_add(c.amount);
        }
        for (name, n) in &u.counters {
            let sum = self.counters.entry(name.clone()).or_default();
            *sum = sum.saturating_add(*n);
        }
    }

    pub fn merge(&mut self, other: &UsageTotals) {
        self.runs += other.runs;
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        for (currency, amount) in &other.cost {
            let sum = self.cost.entry(currency.clone()).or_default();
            *sum = sum.saturating_add(*amount);
        }
        for (name, n) in &other.counters {
            let sum = self.counters.entry(name.clone()).or_default();
            *sum = sum.saturating_add(*n);
        }
    }

    pub fn tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }

    /// The cost as text: `0.0042 USD`, several currencies joined by `+`, `-` when none.
    pub fn cost_text(&self) -> String {
        if self.cost.is_empty() {
            return "-".to_owned();
        }
        self.cost.iter().map(|(c, a)| format!("{a} {c}")).collect::<Vec<_>>().join(" + ")
    }
}

/// Bounded label values for metrics: a value is normalised (lower case unless kept; anything but letters,
/// digits, `.`, `-`, `_`, `:`, `/` becomes `_`; at most 64 characters), and once `cap` distinct
/// values were seen every new one is `other`, so a misbehaving agent cannot grow a time series
/// per call.
#[derive(Debug, Clone)]
pub struct LabelCap {
    cap: usize,
    fold_case: bool,
    seen: std::collections::BTreeSet<String>,
}

/// The label value of everything beyond a [`LabelCap`]'s cap (and of agents not in sett.yml).
pub const OTHER_LABEL: &str = "other";
/// The `model` label of usage that named no model.
pub const NO_MODEL_LABEL: &str = "none";

impl LabelCap {
    /// Values folded to lower case (model names).
    pub fn new(cap: usize) -> Self {
        Self { cap, fold_case: true, seen: Default::default() }
    }

    /// Values kept in their case (currency codes, upper case by their validation).
    pub fn keeping_case(cap: usize) -> Self {
        Self { cap, fold_case: false, seen: Default::default() }
    }

    pub fn label(&mut self, raw: Option<&str>) -> String {
        let Some(raw) = raw else { return NO_MODEL_LABEL.to_owned() };
        let normal: String = raw
            .chars()
            .take(64)
            .map(|c| {
                let c = if self.fold_case { c.to_ascii_lowercase() } else { c };
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '/') { c } else { '_' }
            })
            .collect();
        if self.seen.contains(&normal) {
            return normal;
        }
        if self.seen.len() >= self.cap {
            return OTHER_LABEL.to_owned();
        }
        self.seen.insert(normal.clone());
        normal
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn amounts_are_exact_decimals_with_a_canonical_text() {
        for (text, canonical) in [
            ("0", "0"),
            ("0.0042", "0.0042"),
            ("1.50", "1.5"),
            ("007", "7"),
            ("12.000000000000000001", "12.000000000000000001"),
        ] {
            assert_eq!(text.parse::<Amount>().unwrap().to_string(), canonical, "{text}");
        }
        for bad in ["", "-1", "1.", ".5", "1e3", "0x10", "1.0000000000000000001", "1234567890123", " 1", "1,5", "NaN"] {
            assert!(bad.parse::<Amount>().is_err(), "{bad}");
        }
        let tenth: Amount = "0.001".parse().unwrap();
        let sum = (0..1000).fold(Amount::ZERO, |s, _| s.saturating_add(tenth));
        assert_eq!(sum.to_string(), "1");
        assert_eq!("2.25".parse::<Amount>().unwrap().nanos(), 2_250_000_000);
        assert_eq!("0.0000000019".parse::<Amount>().unwrap().nanos(), 1);
    }

    #[test]
    fn a_full_usage_is_read_and_stored_canonically() {
        let u = Usage::from_tool_json(&json!({
            "model": "gpt-x", "input_tokens": 1200, "output_tokens": 300,
            "cost": {"amount": "0.00420", "currency": "USD"}, "counters": {"tool_calls": 3, "cache_read_tokens": 10}
        }))
        .unwrap()
        .unwrap();
        assert_eq!(u.tokens(), 1500);
        assert_eq!(
            serde_json::to_string(&u).unwrap(),
            r#"{"model":"gpt-x","input_tokens":1200,"output_tokens":300,"cost":{"amount":"0.0042","currency":"USD"},"counters":{"cache_read_tokens":10,"tool_calls":3}}"#
        );
        let back: Usage = serde_json::from_str(&serde_json::to_string(&u).unwrap()).unwrap();
        assert_eq!(back, u);
        assert_eq!(Usage::from_tool_json(&json!({})).unwrap(), None);
        assert_eq!(Usage::from_tool_json(&Value::Null).unwrap(), None);
        assert_eq!(Usage::from_tool_json(&json!({"model": null})).unwrap(), None);
    }

    #[test]
    fn every_problem_is_named() {
        let e = Usage::from_tool_json(&json!({
            "model": 3, "input_tokens": -1, "output_tokens": 1.5, "cost": {"amount": 0.1, "currency": "usd"},
            "tokens": 1, "counters": {"Bad Name": 1, "ok": "x"}
        }))
        .unwrap_err();
        for part in [
            "model: must be a string",
            "input_tokens: must be a non-negative integer, got -1",
            "output_tokens: must be a non-negative integer, got 1.5",
            "cost.amount: must be a decimal string (\"0.1\")",
            "cost.currency: \"usd\" is not a currency code",
            "tokens: unknown field",
            "counters.Bad Name: a counter name",
            "counters.ok: must be a non-negative integer",
        ] {
            assert!(e.contains(part), "{part:?} missing from:\n{e}");
        }
        assert!(Usage::from_tool_json(&json!({"cost_usd": 0.01})).unwrap_err().contains("\"cost\": {\"amount\""));
        assert!(Usage::from_tool_json(&json!({"cost": {"amount": "1"}})).unwrap_err().contains("currency: required"));
        assert!(Usage::from_tool_json(&json!("lots")).unwrap_err().contains("must be an object"));
        assert!(Usage::from_tool_json(&json!({"model": ""})).unwrap_err().contains("model: must not be empty"));
    }

    #[test]
    fn totals_add_exactly_per_currency() {
        let run = |amount: &str, currency: &str| Usage {
            input_tokens: Some(10),
            output_tokens: Some(1),
            cost: Some(Cost { amount: amount.parse().unwrap(), currency: Currency::parse(currency).unwrap() }),
            counters: [("tool_calls".to_owned(), 2)].into(),
            ..Usage::default()
        };
        let mut t = UsageTotals::default();
        for _ in 0..3 {
            t.add(&run("0.1", "USD"));
        }
        t.add(&run("2", "EUR"));
        assert_eq!((t.runs, t.tokens(), t.counters["tool_calls"]), (4, 44, 8));
        assert_eq!(t.cost_text(), "2 EUR + 0.3 USD");
        let mut both = t.clone();
        both.merge(&t);
        assert_eq!(both.cost_text(), "4 EUR + 0.6 USD");
    }

    #[test]
    fn labels_are_normalised_and_capped() {
        let mut cap = LabelCap::new(2);
        assert_eq!(cap.label(Some("GPT-4o Mini")), "gpt-4o_mini");
        assert_eq!(cap.label(Some(&"x".repeat(100))).len(), 64);
        assert_eq!(cap.label(Some("third")), OTHER_LABEL);
        assert_eq!(cap.label(Some("gpt-4o mini")), "gpt-4o_mini", "a value seen before keeps its label");
        assert_eq!(cap.label(None), NO_MODEL_LABEL);
        assert_eq!(LabelCap::keeping_case(1).label(Some("USD")), "USD");
    }

    proptest! {
        #[test]
        fn amount_text_round_trips(int in 0u64..1_000_000_000_000, frac in 0u64..1_000_000_000_000_000_000) {
            let a: Amount = format!("{int}.{frac:018}").parse().unwrap();
            prop_assert_eq!(a.to_string().parse::<Amount>().unwrap(), a);
        }

        #[test]
        fn the_usage_parser_never_panics(s in "\\PC*") {
            if let Ok(v) = serde_json::from_str::<Value>(&s) {
                let _ = Usage::from_tool_json(&v);
            }
        }
    }
}
