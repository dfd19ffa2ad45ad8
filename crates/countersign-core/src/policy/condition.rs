//! `when` conditions: CEL programs compiled once at policy load, and the binding of a
//! proposed action's fields to CEL variables.
//!
//! Binding is the expensive part of evaluating CEL (building a context from nested JSON costs
//! several times the evaluation itself), so it is done lazily and without copying: each
//! condition records which variables it reads, only those are bound, each at most once per
//! request, and strings are borrowed from the request rather than cloned. JSON numbers become
//! CEL `int` whenever they fit, so `args.amount + 1 == 1501` works as authors expect (serde's
//! own conversion would make non-negative integers `uint`, which do not mix with `int`
//! literals).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelTimestamp,
    CelUInt,
};
use cel::common::value::Val;
use cel::{Context, Env, Program, Value};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};

use super::native::Native;
use crate::action::ProposedAction;

/// The variables a condition may use (SPEC section 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variable {
    Action,
    Agent,
    Args,
    Context,
    Confidence,
    Hints,
    Now,
}

impl Variable {
    pub const ALL: [Variable; 7] = [
        Variable::Action,
        Variable::Agent,
        Variable::Args,
        Variable::Context,
        Variable::Confidence,
        Variable::Hints,
        Variable::Now,
    ];

    pub const NAMES: [&'static str; 7] = [
        "action",
        "agent",
        "args",
        "context",
        "confidence",
        "hints",
        "now",
    ];

    pub fn name(self) -> &'static str {
        Variable::NAMES[self as usize]
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of [`Variable`]s, as a bit set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Variables(u8);

impl Variables {
    pub const ALL: Variables = Variables(0x7f);

    pub fn contains(self, variable: Variable) -> bool {
        self.0 & variable.bit() != 0
    }

    pub fn insert(&mut self, variable: Variable) {
        self.0 |= variable.bit();
    }

    pub fn iter(self) -> impl Iterator<Item = Variable> {
        Variable::ALL.into_iter().filter(move |v| self.contains(*v))
    }
}

/// The one CEL environment (standard library) every condition is compiled and run in.
static ENVIRONMENT: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// A compiled `when` condition.
#[derive(Debug)]
pub struct Condition {
    source: String,
    program: Program,
    uses: Variables,
    /// The same condition for the native evaluator, when it is of a shape it knows.
    native: Option<Native>,
}

/// Why a condition could not be compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConditionError {
    /// CEL syntax; `line` and `column` are 1-based positions inside the condition text.
    Syntax {
        message: String,
        line: usize,
        column: usize,
    },
    /// A name that is not one of the variables of SPEC section 2.
    UnknownVariable { name: String },
}

impl std::fmt::Display for ConditionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConditionError::Syntax {
                message,
                line,
                column,
            } => write!(f, "syntax error at line {line}, column {column}: {message}"),
            ConditionError::UnknownVariable { name } => write!(
                f,
                "`{name}` is not a variable (the variables are: {})",
                Variable::NAMES.join(", ")
            ),
        }
    }
}

impl Condition {
    pub fn compile(source: &str) -> Result<Condition, Vec<ConditionError>> {
        let program = ENVIRONMENT.compile(source).map_err(|errors| {
            errors
                .errors
                .iter()
                .map(|e| ConditionError::Syntax {
                    message: clean_cel_message(&e.msg),
                    line: usize::try_from(e.pos.0).unwrap_or(1).max(1),
                    column: usize::try_from(e.pos.1).unwrap_or(0) + 1,
                })
                .collect::<Vec<_>>()
        })?;
        let mut uses = Variables::default();
        let mut unknown = Vec::new();
        for name in super::names::free_names(program.expression(), ENVIRONMENT.types()) {
            match Variable::NAMES.iter().position(|n| *n == name) {
                Some(i) => uses.insert(Variable::ALL[i]),
                None => unknown.push(ConditionError::UnknownVariable { name }),
            }
        }
        if !unknown.is_empty() {
            return Err(unknown);
        }
        Ok(Condition {
            source: source.to_owned(),
            native: Native::compile(program.expression()),
            program,
            uses,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The variables this condition reads.
    pub fn uses(&self) -> Variables {
        self.uses
    }

    #[cfg(test)]
    pub(super) fn native(&self) -> Option<&Native> {
        self.native.as_ref()
    }

    /// The condition's value on `request` where the native evaluator can give it without
    /// CEL (the native evaluator, `policy/native.rs`); `None`: evaluate with CEL.
    pub fn evaluate_natively(&self, request: &ProposedAction) -> Option<bool> {
        self.native.as_ref()?.evaluate(request)
    }

    /// The condition's value on `request` at `now`, on its own (natively where it can, else
    /// with CEL): for conditions outside a policy, such as a grant's.
    pub fn holds(&self, request: &ProposedAction, now: DateTime<Utc>) -> Result<bool, String> {
        if let Some(value) = self.evaluate_natively(request) {
            return Ok(value);
        }
        let mut bindings = Bindings::new(request, now);
        bindings.bind(self.uses);
        self.evaluate(&bindings)
    }

    /// Is this condition the constant `true`? (The checker uses it to find shadowed rules.)
    pub fn is_always_true(&self) -> bool {
        self.source.trim() == "true"
    }

    /// Evaluates against `bindings`, which must already hold every variable in
    /// [`Condition::uses`] that the request has. A result that is not a bool is an error.
    pub fn evaluate(&self, bindings: &Bindings<'_>) -> Result<bool, String> {
        match self.program.execute(&bindings.context) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "the condition must give a bool, it gave {}",
                describe(&other)
            )),
            Err(e) => Err(describe_error(&e)),
        }
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Int(i) => format!("the int {i}"),
        Value::UInt(u) => format!("the uint {u}"),
        Value::Float(f) => format!("the double {f}"),
        Value::String(s) => format!("the string {s:?}"),
        other => format!("a {}", other.type_of()),
    }
}

fn describe_error(error: &cel::ExecutionError) -> String {
    match error {
        cel::ExecutionError::NoSuchKey(key) => {
            format!("no such key: {key} (use has(...) to test for optional fields)")
        }
        cel::ExecutionError::UndeclaredReference(name) => {
            format!("{name} is not set on this request")
        }
        other => other.to_string(),
    }
}

fn clean_cel_message(message: &str) -> String {
    message.trim().to_owned()
}

/// The CEL variables of one request, bound on demand.
pub struct Bindings<'r> {
    request: &'r ProposedAction,
    now: DateTime<Utc>,
    bound: Variables,
    context: Context<'r, 'r>,
}

impl<'r> Bindings<'r> {
    pub fn new(request: &'r ProposedAction, now: DateTime<Utc>) -> Bindings<'r> {
        Bindings {
            request,
            now,
            bound: Variables::default(),
            context: Context::with_env(Arc::clone(&ENVIRONMENT)),
        }
    }

    /// Binds every variable in `wanted` that is not bound yet.
    pub fn bind(&mut self, wanted: Variables) {
        for variable in wanted.iter() {
            if self.bound.contains(variable) {
                continue;
            }
            self.bound.insert(variable);
            let request = self.request;
            let value: Box<dyn Val + 'r> = match variable {
                Variable::Action => Box::new(CelString::from(request.action.as_str())),
                Variable::Agent => Box::new(CelString::from(request.agent.as_str())),
                Variable::Args => object_to_val(&request.args),
                Variable::Context => object_to_val(&request.context),
                // Absent when not sent: a condition that reads it then fails to evaluate,
                // which fails closed.
                Variable::Confidence => match request.confidence {
                    Some(c) => Box::new(CelDouble::from(c.value())),
                    None => continue,
                },
                Variable::Hints => {
                    let map: HashMap<CelMapKey<'r>, Box<dyn Val + 'r>> = request
                        .hints
                        .entries()
                        .map(|(name, value)| {
                            (
                                CelMapKey::from(name),
                                Box::new(CelBool::from(value)) as Box<dyn Val + 'r>,
                            )
                        })
                        .collect();
                    Box::new(CelMap::from(map))
                }
                Variable::Now => Box::new(CelTimestamp::from(self.now.fixed_offset())),
            };
            self.context.add_variable_as_val(variable.name(), value);
        }
    }
}

fn object_to_val<'v>(object: &'v Map<String, Json>) -> Box<dyn Val + 'v> {
    let map: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = object
        .iter()
        .map(|(k, v)| (CelMapKey::from(k.as_str()), json_to_val(v)))
        .collect();
    Box::new(CelMap::from(map))
}

/// JSON to a CEL value borrowing the JSON's strings. Integers become `int` when they fit,
/// `uint` only above `i64::MAX`, everything else `double`.
pub fn json_to_val(value: &Json) -> Box<dyn Val + '_> {
    match value {
        Json::Null => Box::new(CelNull),
        Json::Bool(b) => Box::new(CelBool::from(*b)),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Box::new(CelInt::from(i))
            } else if let Some(u) = n.as_u64() {
                Box::new(CelUInt::from(u))
            } else {
                Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN)))
            }
        }
        Json::String(s) => Box::new(CelString::from(s.as_str())),
        Json::Array(items) => Box::new(CelList::from(
            items.iter().map(json_to_val).collect::<Vec<_>>(),
        )),
        Json::Object(object) => object_to_val(object),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{ActionName, AgentName, Confidence};
    use serde_json::json;

    fn request(args: Json) -> ProposedAction {
        let mut r = ProposedAction::new(
            ActionName::parse("refund.create").unwrap(),
            AgentName::parse("support-bot").unwrap(),
        );
        r.args = args.as_object().unwrap().clone();
        r
    }

    fn eval(source: &str, request: &ProposedAction) -> Result<bool, String> {
        let condition = Condition::compile(source).unwrap();
        let mut bindings = Bindings::new(request, Utc::now());
        bindings.bind(condition.uses());
        condition.evaluate(&bindings)
    }

    #[test]
    fn evaluates_with_int_arithmetic() {
        let r = request(
            json!({"amount": 1500, "currency": "USD", "tags": ["a", "b"], "nested": {"x": 1.5}}),
        );
        let cases = [
            ("args.amount > 1000", Ok(true)),
            ("args.amount + 1 == 1501", Ok(true)),
            ("args.currency == 'USD' && 'b' in args.tags", Ok(true)),
            ("args.nested.x < 2.0", Ok(true)),
            (
                "action == 'refund.create' && agent.startsWith('support-')",
                Ok(true),
            ),
            ("has(args.missing)", Ok(false)),
        ];
        for (source, expected) in cases {
            assert_eq!(eval(source, &r), expected, "{source}");
        }
    }

    #[test]
    fn errors_are_reported_not_swallowed() {
        let r = request(json!({"amount": 1500}));
        assert!(
            eval("args.missing > 3", &r)
                .unwrap_err()
                .contains("no such key")
        );
        assert!(
            eval("args.amount", &r)
                .unwrap_err()
                .contains("must give a bool")
        );
        assert!(eval("confidence < 0.5", &r).is_err(), "confidence absent");
        let mut with_confidence = r.clone();
        with_confidence.confidence = Some(Confidence::new(0.4).unwrap());
        assert_eq!(eval("confidence < 0.5", &with_confidence), Ok(true));
    }

    #[test]
    fn compile_errors() {
        assert!(matches!(
            Condition::compile("args.amount >").unwrap_err()[0],
            ConditionError::Syntax { .. }
        ));
        assert_eq!(
            Condition::compile("arg.amount > 3 && user == 'x'")
                .unwrap_err()
                .len(),
            2
        );
        let c = Condition::compile(
            "hints.destructive == true && now > timestamp('2020-01-01T00:00:00Z')",
        )
        .unwrap();
        assert!(c.uses().contains(Variable::Hints) && c.uses().contains(Variable::Now));
        assert!(!c.uses().contains(Variable::Args));
    }
}
