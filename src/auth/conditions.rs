//! Policy conditions in Databunker Pro's syntax, parsed once and evaluated against what is known
//! of a call. Invariant: a condition that names a key, operator or value this module cannot
//! evaluate is refused when the policy is stored (400), never stored to silently not apply; and
//! a condition whose facts are not known yet (the target record before it is found) never holds
//! for an allow and always holds for a deny (both fail closed).

use serde_json::Value;

use crate::error::{Error, Result};

/// What a condition key refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// `${request_metadata:a.b}` (or the older `request_metadata.a.b`): a field of the body's
    /// `request_metadata`.
    Meta(Vec<String>),
    /// `${user_group_id}`: the groups the caller's own record belongs to.
    UserGroupId,
    /// `${target_group_id}`: the groups the target record (or the listed group) belongs to.
    TargetGroupId,
    /// `${user_group_members:role/R}`: the records holding role R in the caller's groups.
    UserGroupMembers(String),
    /// `${target_group_members:role/R}`: the records holding role R in the target's groups.
    TargetGroupMembers(String),
    /// `${user:field}`: a top-level field of the target record's profile.
    TargetField(String),
    /// `${agreement:brief}`: whether the target record has the agreement `brief` accepted.
    Agreement(String),
}

impl Key {
    /// Parses a condition key; `None` for anything this module cannot evaluate.
    pub fn parse(text: &str) -> Option<Key> {
        let t = text.trim();
        if let Some(path) = t.strip_prefix("request_metadata.") {
            return meta_path(path);
        }
        let inner = t.strip_prefix("${")?.strip_suffix('}')?;
        let (name, arg) = match inner.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (inner, None),
        };
        let role = |a: Option<&str>| a.and_then(|a| a.strip_prefix("role/")).filter(|r| valid_name(r)).map(str::to_string);
        Some(match (name, arg) {
            ("request_metadata", Some(path)) => return meta_path(path),
            ("user_group_id", None) => Key::UserGroupId,
            ("target_group_id", None) => Key::TargetGroupId,
            ("user_group_members", a) => Key::UserGroupMembers(role(a)?),
            ("target_group_members", a) => Key::TargetGroupMembers(role(a)?),
            ("user", Some(field)) if valid_name(field) => Key::TargetField(field.to_string()),
            ("agreement", Some(brief)) if valid_name(brief) => Key::Agreement(brief.to_string()),
            _ => return None,
        })
    }

    /// Whether the key needs to know the target record (or group).
    pub fn needs_target(&self) -> bool {
        matches!(self, Key::TargetGroupId | Key::TargetGroupMembers(_) | Key::TargetField(_) | Key::Agreement(_))
    }

    pub fn is_meta(&self) -> bool {
        matches!(self, Key::Meta(_))
    }
}

fn meta_path(path: &str) -> Option<Key> {
    let parts: Vec<String> = path.split('.').map(str::to_string).collect();
    (!parts.is_empty() && parts.iter().all(|p| !p.is_empty())).then_some(Key::Meta(parts))
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    Bool,
    /// `ForAnyValue:ListIntersect`: the key's values and the operand's share at least one.
    ListIntersect,
}

impl Op {
    pub const NAMES: &'static str = "StringEquals, StringNotEquals, StringEqualsIgnoreCase, StringNotEqualsIgnoreCase, StringLike, \
                                     StringNotLike, Bool, ForAnyValue:ListIntersect";

    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "StringEquals" => Op::StringEquals,
            "StringNotEquals" => Op::StringNotEquals,
            "StringEqualsIgnoreCase" => Op::StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => Op::StringNotEqualsIgnoreCase,
            "StringLike" => Op::StringLike,
            "StringNotLike" => Op::StringNotLike,
            "Bool" => Op::Bool,
            "ForAnyValue:ListIntersect" | "ListIntersect" => Op::ListIntersect,
            _ => return None,
        })
    }
}

/// The right-hand side of a test: literal strings (a bool is its text), or another key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    Literals(Vec<String>),
    Key(Key),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Test {
    pub op: Op,
    pub key: Key,
    pub operand: Operand,
}

/// Every test of a policy's `Condition` (all must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Condition {
    pub tests: Vec<Test>,
}

/// Three-valued: a fact may not be known yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    Yes,
    No,
    Unknown,
}

/// What a call knows; `None` when a key's value is not known in this phase.
pub trait Facts {
    fn values(&self, key: &Key) -> Option<Vec<String>>;
}

impl Condition {
    /// Parses and checks a Pro `Condition` object.
    pub fn parse(doc: &Value) -> Result<Condition> {
        let Value::Object(ops) = doc else { return Err(Error::bad("policy.Condition must be an object")) };
        let mut tests = Vec::new();
        for (op_name, body) in ops {
            let op = Op::parse(op_name)
                .ok_or_else(|| Error::bad(format!("policy.Condition operator {op_name} cannot be evaluated (supported: {})", Op::NAMES)))?;
            let Value::Object(pairs) = body else { return Err(Error::bad("policy.Condition operators map keys to values")) };
            for (key_text, value) in pairs {
                let key = Key::parse(key_text).ok_or_else(|| {
                    Error::bad(format!(
                        "policy.Condition key {key_text} cannot be evaluated (supported: ${{request_metadata:<path>}}, ${{user_group_id}}, \
                         ${{target_group_id}}, ${{user_group_members:role/<role>}}, ${{target_group_members:role/<role>}}, ${{user:<field>}}, \
                         ${{agreement:<brief>}})"
                    ))
                })?;
                let operand = operand(op, value)?;
                tests.push(Test { op, key, operand });
            }
        }
        Ok(Condition { tests })
    }

    pub fn is_empty(&self) -> bool {
        self.tests.is_empty()
    }

    /// Whether evaluating this condition needs more than the request itself (the caller's
    /// groups, or the target record).
    pub fn is_contextual(&self) -> bool {
        self.tests.iter().any(|t| !t.key.is_meta() || matches!(&t.operand, Operand::Key(k) if !k.is_meta()))
    }

    pub fn eval(&self, facts: &dyn Facts) -> Holds {
        let mut out = Holds::Yes;
        for t in &self.tests {
            match t.eval(facts) {
                Holds::No => return Holds::No,
                Holds::Unknown => out = Holds::Unknown,
                Holds::Yes => {}
            }
        }
        out
    }

    /// The condition as stored with the translated rules: the original document.
    pub fn to_stored(doc: &Value) -> String {
        doc.to_string()
    }
}

fn operand(op: Op, value: &Value) -> Result<Operand> {
    let literal = |v: &Value| -> Result<String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(Error::bad("policy.Condition values are strings, booleans, numbers or lists of them")),
        }
    };
    if let Value::String(s) = value {
        if s.trim_start().starts_with("${") {
            let key = Key::parse(s).ok_or_else(|| Error::bad(format!("policy.Condition value {s} cannot be evaluated")))?;
            return Ok(Operand::Key(key));
        }
    }
    let values = match value {
        Value::Array(a) if !a.is_empty() => a.iter().map(literal).collect::<Result<Vec<_>>>()?,
        Value::Array(_) => return Err(Error::bad("policy.Condition lists must not be empty")),
        other => vec![literal(other)?],
    };
    if op == Op::Bool && values.iter().any(|v| v != "true" && v != "false") {
        return Err(Error::bad("policy.Condition Bool takes true or false"));
    }
    Ok(Operand::Literals(values))
}

impl Test {
    fn eval(&self, facts: &dyn Facts) -> Holds {
        let Some(actual) = facts.values(&self.key) else { return Holds::Unknown };
        let wanted = match &self.operand {
            Operand::Literals(v) => v.clone(),
            Operand::Key(k) => match facts.values(k) {
                Some(v) => v,
                None => return Holds::Unknown,
            },
        };
        let any = |f: &dyn Fn(&str, &str) -> bool| actual.iter().any(|a| wanted.iter().any(|w| f(a, w)));
        let holds = match self.op {
            Op::StringEquals | Op::ListIntersect => any(&|a, w| a == w),
            Op::StringEqualsIgnoreCase => any(&|a, w| a.eq_ignore_ascii_case(w)),
            Op::StringLike => any(&|a, w| glob(w, a)),
            Op::Bool => any(&|a, w| a.eq_ignore_ascii_case(w)),
            Op::StringNotEquals => !any(&|a, w| a == w),
            Op::StringNotEqualsIgnoreCase => !any(&|a, w| a.eq_ignore_ascii_case(w)),
            Op::StringNotLike => !any(&|a, w| glob(w, a)),
        };
        if holds {
            Holds::Yes
        } else {
            Holds::No
        }
    }
}

/// `*` matches any run of characters.
pub fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, rest)) => {
            s.starts_with(head)
                && (0..=s.len() - head.len()).any(|i| s.is_char_boundary(head.len() + i) && glob(rest, &s[head.len() + i..]))
        }
    }
}

/// Facts from the request alone: its `request_metadata`.
pub struct MetaFacts<'a>(pub &'a Value);

impl Facts for MetaFacts<'_> {
    fn values(&self, key: &Key) -> Option<Vec<String>> {
        match key {
            Key::Meta(path) => Some(meta_values(self.0, path)),
            _ => None,
        }
    }
}

/// The values at `path` of request_metadata: a string or scalar is one value, a list its items;
/// absent is none.
pub fn meta_values(meta: &Value, path: &[String]) -> Vec<String> {
    let found = path.iter().try_fold(meta, |v, k| v.get(k));
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match found {
        Some(Value::Array(a)) => a.iter().filter_map(scalar).collect(),
        Some(v) => scalar(v).into_iter().collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta_holds(meta: Value, cond: Value) -> Holds {
        Condition::parse(&cond).unwrap().eval(&MetaFacts(&meta))
    }

    #[test]
    fn pro_keys_and_the_older_dotted_keys_read_request_metadata() {
        let kyc = json!({"purpose": "kyc", "tags": ["a", "b"], "n": 3, "flag": true});
        assert_eq!(meta_holds(kyc.clone(), json!({"StringEquals": {"${request_metadata:purpose}": "kyc"}})), Holds::Yes);
        assert_eq!(meta_holds(kyc.clone(), json!({"StringEquals": {"request_metadata.purpose": ["x", "kyc"]}})), Holds::Yes);
        assert_eq!(meta_holds(json!({}), json!({"StringEquals": {"${request_metadata:purpose}": "kyc"}})), Holds::No);
        assert_eq!(meta_holds(json!({}), json!({"StringNotEquals": {"${request_metadata:purpose}": "kyc"}})), Holds::Yes);
        assert_eq!(meta_holds(kyc.clone(), json!({"StringEqualsIgnoreCase": {"${request_metadata:purpose}": "KYC"}})), Holds::Yes);
        assert_eq!(meta_holds(kyc.clone(), json!({"StringNotLike": {"${request_metadata:purpose}": "k*"}})), Holds::No);
        assert_eq!(meta_holds(kyc.clone(), json!({"ForAnyValue:ListIntersect": {"${request_metadata:tags}": ["b", "c"]}})), Holds::Yes);
        assert_eq!(meta_holds(kyc.clone(), json!({"Bool": {"${request_metadata:flag}": true}})), Holds::Yes);
        assert_eq!(meta_holds(kyc, json!({"StringEquals": {"${request_metadata:n}": 3}})), Holds::Yes);
    }

    #[test]
    fn what_cannot_be_evaluated_is_refused_when_stored() {
        for bad in [
            json!({"NumericEquals": {"${request_metadata:n}": 1}}),
            json!({"StringEquals": {"${request_meta:purpose}": "x"}}),
            json!({"StringEquals": {"purpose": "x"}}),
            json!({"StringEquals": {"${target_group_members:child}": "x"}}),
            json!({"StringEquals": {"${request_metadata:purpose}": {"nested": 1}}}),
            json!({"StringEquals": {"${request_metadata:purpose}": []}}),
            json!({"StringEquals": {"${request_metadata:purpose}": "${nonsense}"}}),
            json!({"Bool": {"${agreement:x}": "maybe"}}),
            json!({"StringEquals": "x"}),
        ] {
            assert!(Condition::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn facts_not_known_yet_leave_the_condition_undecided() {
        let c = Condition::parse(
            &json!({"StringEquals": {"${user_group_id}": "${target_group_id}"}, "StringLike": {"${request_metadata:r}": "a*"}}),
        )
        .unwrap();
        assert!(c.is_contextual());
        assert_eq!(c.eval(&MetaFacts(&json!({"r": "ab"}))), Holds::Unknown);
        assert_eq!(c.eval(&MetaFacts(&json!({"r": "zz"}))), Holds::No);
    }
}
