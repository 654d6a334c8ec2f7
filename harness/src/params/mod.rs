//! Scenario parameters: what each scenario declares, and how values given on the command
//! line (`--set read_size=5,1024`) or in a suite file (`read_size = [5, 1024]`) become
//! checked values.
//!
//! A scenario's parameters are a serde struct with defaults; next to it the scenario
//! declares a [`ParamSpec`] per field (type, range, unit, meaning). Values are checked
//! against the spec first, so a bad value gets a message naming what is valid, before the
//! typed struct is ever deserialized.
//!
//! Several values for one parameter make a matrix: every combination becomes a case.
//! For scalar parameters a list is the matrix (`5,1024` on the command line, `[5, 1024]`
//! in TOML). For list parameters a single list is one value; alternatives are separated
//! by `;` on the command line (`--set messages='a,b;c,d'`) or given as a list of lists in
//! TOML.

mod declare;

use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

pub use declare::{Named, ParamSet};

/// A parameter's type and, for numbers, its valid range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ParamKind {
    /// `true` or `false`.
    Bool,
    /// A whole number in `min..=max`.
    Integer {
        /// Smallest valid value.
        min: u64,
        /// Largest valid value.
        max: u64,
    },
    /// One of a fixed set of words.
    Choice {
        /// The valid words.
        options: &'static [&'static str],
    },
    /// Free text that the scenario's own `validate` checks (a framing name such as
    /// `u32be` or `fixed:64`, which no fixed list of choices can hold).
    Text {
        /// What the text must be, in words, for `socklab list` and error messages.
        expected: &'static str,
    },
    /// A list of strings (e.g. the messages a client writes).
    StringList {
        /// Fewest items allowed.
        min_items: usize,
        /// Most items allowed.
        max_items: usize,
    },
}

impl ParamKind {
    /// The type in words, as shown in `socklab list` and in error messages.
    pub fn describe(&self) -> String {
        match self {
            ParamKind::Bool => "bool (true or false)".to_string(),
            ParamKind::Integer { min, max } => format!("integer in {min}..={max}"),
            ParamKind::Choice { options } => format!("one of {}", options.join(", ")),
            ParamKind::Text { expected } => expected.to_string(),
            ParamKind::StringList { min_items, max_items } => {
                format!("list of {min_items}..={max_items} strings")
            }
        }
    }

    fn is_list(&self) -> bool {
        matches!(self, ParamKind::StringList { .. })
    }
}

/// What a scenario declares about one of its parameters.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ParamSpec {
    /// The field name, as used in `--set` and suite files.
    pub name: &'static str,
    /// Type and valid range.
    #[serde(flatten)]
    pub kind: ParamKind,
    /// Unit of the value (`bytes`, `ms`), if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<&'static str>,
    /// What the parameter does, in one line.
    pub doc: &'static str,
}

/// A name that is none of the valid ones (a choice parameter's value, a `--framing`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown {what} `{input}`; valid: {}", valid.join(", "))]
pub struct UnknownName {
    /// What kind of name (`behaviour`, `flavour`, `transport`).
    pub what: &'static str,
    /// The name given.
    pub input: String,
    /// The valid names.
    pub valid: Vec<&'static str>,
}

/// Why a scenario refused a combination of values that each pass their spec: what its
/// `validate` returns.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{reason}")]
pub struct Invalid {
    /// The parameter at fault, as `--set` names it (the one to change).
    pub param: &'static str,
    /// Why, in one line, with what would be valid.
    pub reason: String,
}

impl Invalid {
    /// Parameter `param` is at fault, for `reason`.
    pub fn new(param: &'static str, reason: impl Into<String>) -> Self {
        Invalid { param, reason: reason.into() }
    }
}

/// Why a parameter value was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParamError {
    /// The scenario has no parameter of this name.
    #[error("unknown parameter `{name}` for scenario `{scenario}`; valid parameters: {}", valid.join(", "))]
    Unknown {
        /// The scenario asked about.
        scenario: String,
        /// The name that was given.
        name: String,
        /// The parameters the scenario has.
        valid: Vec<String>,
    },
    /// The value does not fit the parameter's type or range.
    #[error("bad value `{value}` for parameter `{name}`: expected {expected}")]
    BadValue {
        /// The parameter.
        name: String,
        /// The value as given.
        value: String,
        /// The type and range, in words.
        expected: String,
    },
    /// A `--set` argument without `=`.
    #[error("bad --set `{0}`: expected KEY=VALUE, e.g. --set read_size=5,1024")]
    MalformedSet(String),
    /// The scenario refused a combination of otherwise valid values.
    #[error("invalid parameters for `{scenario}`: {reason}")]
    Invalid {
        /// The scenario.
        scenario: String,
        /// The parameter to change, where the scenario named one.
        param: Option<&'static str>,
        /// Its reason, in one line.
        reason: String,
    },
}

impl ParamError {
    /// Scenario `scenario` refused its parameters: `invalid`.
    pub fn invalid(scenario: &str, invalid: Invalid) -> Self {
        ParamError::Invalid {
            scenario: scenario.to_string(),
            param: Some(invalid.param),
            reason: invalid.reason,
        }
    }
}

impl ParamSpec {
    /// Parses command-line text into one or more values (more than one makes a matrix).
    ///
    /// # Errors
    /// [`ParamError::BadValue`] naming the expected type and range.
    pub fn parse_cli(&self, text: &str) -> Result<Vec<Value>, ParamError> {
        if self.kind.is_list() {
            return text
                .split(';')
                .map(|alternative| {
                    let items = alternative.split(',').map(|item| Value::String(item.to_string())).collect();
                    self.check(Value::Array(items))
                })
                .collect();
        }
        text.split(',').map(|word| self.check(self.parse_word(word.trim()))).collect()
    }

    /// Converts a suite-file value into one or more values (an array makes a matrix).
    ///
    /// # Errors
    /// [`ParamError::BadValue`] naming the expected type and range.
    pub fn from_toml(&self, value: &toml::Value) -> Result<Vec<Value>, ParamError> {
        let json = toml_to_json(value);
        let alternatives = match (&json, self.kind.is_list()) {
            (Value::Array(items), true) if items.iter().all(Value::is_array) && !items.is_empty() => {
                items.clone()
            }
            (Value::Array(items), false) => items.clone(),
            _ => vec![json],
        };
        if alternatives.is_empty() {
            return Err(self.bad(&Value::Array(vec![])));
        }
        alternatives.into_iter().map(|v| self.check(v)).collect()
    }

    /// Checks one value against the type and range, returning it when valid.
    ///
    /// # Errors
    /// [`ParamError::BadValue`] naming the expected type and range.
    pub fn check(&self, value: Value) -> Result<Value, ParamError> {
        let valid = match (&self.kind, &value) {
            (ParamKind::Bool, Value::Bool(_)) => true,
            (ParamKind::Integer { min, max }, Value::Number(n)) => {
                n.as_u64().is_some_and(|n| (*min..=*max).contains(&n))
            }
            (ParamKind::Choice { options }, Value::String(s)) => options.contains(&s.as_str()),
            (ParamKind::Text { .. }, Value::String(s)) => !s.is_empty(),
            (ParamKind::StringList { min_items, max_items }, Value::Array(items)) => {
                (*min_items..=*max_items).contains(&items.len()) && items.iter().all(Value::is_string)
            }
            _ => false,
        };
        if valid { Ok(value) } else { Err(self.bad(&value)) }
    }

    /// A word from the command line as a typed value; anything unparsable stays a string
    /// so that [`ParamSpec::check`] reports it against the expected type.
    fn parse_word(&self, word: &str) -> Value {
        match self.kind {
            ParamKind::Bool => match word {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::String(word.to_string()),
            },
            ParamKind::Integer { .. } => {
                word.parse::<u64>().map(Value::from).unwrap_or_else(|_| Value::String(word.to_string()))
            }
            ParamKind::Choice { .. } | ParamKind::Text { .. } | ParamKind::StringList { .. } => {
                Value::String(word.to_string())
            }
        }
    }

    fn bad(&self, value: &Value) -> ParamError {
        let mut expected = self.kind.describe();
        if let Some(unit) = self.unit {
            expected = format!("{expected} ({unit})");
        }
        ParamError::BadValue {
            name: self.name.to_string(),
            value: match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
            expected,
        }
    }
}

/// Finds `name` among `specs`, or says which names are valid.
///
/// # Errors
/// [`ParamError::Unknown`] listing the valid parameter names.
pub fn find_spec<'a>(
    scenario: &str,
    specs: &'a [ParamSpec],
    name: &str,
) -> Result<&'a ParamSpec, ParamError> {
    specs.iter().find(|s| s.name == name).ok_or_else(|| ParamError::Unknown {
        scenario: scenario.to_string(),
        name: name.to_string(),
        valid: specs.iter().map(|s| s.name.to_string()).collect(),
    })
}

/// Splits a `--set KEY=VALUE` argument.
///
/// # Errors
/// [`ParamError::MalformedSet`] when there is no `=` or the key is empty.
pub fn split_set(arg: &str) -> Result<(&str, &str), ParamError> {
    match arg.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim(), value)),
        _ => Err(ParamError::MalformedSet(arg.to_string())),
    }
}

/// A TOML value as JSON (the report model's value type). Datetimes become strings.
pub fn toml_to_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::from(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(toml_to_json).collect()),
        toml::Value::Table(table) => {
            Value::Object(table.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const READ_SIZE: ParamSpec = ParamSpec {
        name: "read_size",
        kind: ParamKind::Integer { min: 1, max: 1 << 20 },
        unit: Some("bytes"),
        doc: "",
    };
    const NODELAY: ParamSpec = ParamSpec { name: "nodelay", kind: ParamKind::Bool, unit: None, doc: "" };
    const MESSAGES: ParamSpec = ParamSpec {
        name: "messages",
        kind: ParamKind::StringList { min_items: 1, max_items: 1000 },
        unit: None,
        doc: "",
    };

    #[test]
    fn cli_lists_become_matrices() {
        assert_eq!(READ_SIZE.parse_cli("5,1024").unwrap(), vec![json!(5), json!(1024)]);
        assert_eq!(NODELAY.parse_cli("false, true").unwrap(), vec![json!(false), json!(true)]);
    }

    #[test]
    fn cli_list_parameters_split_alternatives_on_semicolons() {
        assert_eq!(MESSAGES.parse_cli("ab,cd").unwrap(), vec![json!(["ab", "cd"])]);
        assert_eq!(MESSAGES.parse_cli("a;b,c").unwrap(), vec![json!(["a"]), json!(["b", "c"])]);
    }

    #[test]
    fn bad_values_name_the_expected_type_and_range() {
        let err = READ_SIZE.parse_cli("0").unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad value `0` for parameter `read_size`: expected integer in 1..=1048576 (bytes)"
        );
        let err = NODELAY.parse_cli("yes").unwrap_err();
        assert_eq!(err.to_string(), "bad value `yes` for parameter `nodelay`: expected bool (true or false)");
        assert!(READ_SIZE.parse_cli("abc").is_err());
        assert!(READ_SIZE.parse_cli("-5").is_err());
    }

    #[test]
    fn toml_arrays_are_matrices_except_for_single_lists() {
        let v: toml::Value = toml::from_str::<toml::Table>("x = [5, 1024]").unwrap()["x"].clone();
        assert_eq!(READ_SIZE.from_toml(&v).unwrap(), vec![json!(5), json!(1024)]);
        let v: toml::Value = toml::from_str::<toml::Table>("x = [\"a\", \"b\"]").unwrap()["x"].clone();
        assert_eq!(MESSAGES.from_toml(&v).unwrap(), vec![json!(["a", "b"])]);
        let v: toml::Value = toml::from_str::<toml::Table>("x = [[\"a\"], [\"b\"]]").unwrap()["x"].clone();
        assert_eq!(MESSAGES.from_toml(&v).unwrap(), vec![json!(["a"]), json!(["b"])]);
        let v: toml::Value = toml::from_str::<toml::Table>("x = []").unwrap()["x"].clone();
        assert!(READ_SIZE.from_toml(&v).is_err());
    }

    #[test]
    fn text_takes_any_non_empty_word_and_says_what_it_expects() {
        const FRAMING: ParamSpec = ParamSpec {
            name: "framing",
            kind: ParamKind::Text { expected: "a framing strategy (u32be, line, fixed:N, ...)" },
            unit: None,
            doc: "",
        };
        assert_eq!(FRAMING.parse_cli("fixed:64,line").unwrap(), vec![json!("fixed:64"), json!("line")]);
        let err = FRAMING.parse_cli("").unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad value `` for parameter `framing`: expected a framing strategy (u32be, line, fixed:N, ...)"
        );
    }

    #[test]
    fn unknown_parameters_list_the_valid_ones() {
        let err = find_spec("tcp-coalescing", &[READ_SIZE, NODELAY], "readsize").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown parameter `readsize` for scenario `tcp-coalescing`; valid parameters: read_size, nodelay"
        );
    }

    #[test]
    fn set_needs_key_and_equals() {
        assert_eq!(split_set("a=1,2").unwrap(), ("a", "1,2"));
        assert!(split_set("a").is_err());
        assert!(split_set("=1").is_err());
    }
}
