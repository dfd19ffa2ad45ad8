//! A native evaluator for the shapes most `when` conditions take — comparisons of a field
//! with a literal, `has(...)`, boolean hints, joined by `&&`, `||` and `!` — run straight
//! on the request's JSON, without building CEL values.
//!
//! It answers only where the answer cannot differ from CEL's: both sides of a comparison
//! present and of the same type (int with int, double with double, string with string, bool
//! with bool), maps where a map is selected from. Anything else — a missing key, a type
//! mismatch, an absent `confidence`, an int compared with a double — is "don't know"
//! (`None`), and the condition is evaluated by CEL as before, errors included. `&&` and `||`
//! are decided left to right and give up at the first operand they do not know, so a
//! short-circuit is taken only where CEL takes it too.
//!
//! Binding a request's JSON to CEL values costs several times the evaluation itself; this
//! is what keeps a decision under a microsecond. A property test holds it equal to CEL.

use std::cmp::Ordering;

use cel::common::ast::{CallExpr, Expr, LiteralValue, operators};
use cel::parser::Expression;
use serde_json::{Map, Value as Json};

use crate::action::ProposedAction;

/// A condition in the natively evaluated subset.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Native {
    And(Box<Native>, Box<Native>),
    Or(Box<Native>, Box<Native>),
    Not(Box<Native>),
    Constant(bool),
    /// `has(root.a.b)`: the last field is present in the map the others select.
    Has(Path),
    /// A field used as a bool.
    Truthy(Path),
    Compare(Path, Op, Literal),
}

/// A variable and the fields selected from it, e.g. `args.order.total`.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Path {
    root: Root,
    fields: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Root {
    Action,
    Agent,
    Args,
    Context,
    Confidence,
    Hints,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Literal {
    Int(i64),
    Double(f64),
    String(String),
    Bool(bool),
}

/// A value found on the request.
enum Found<'r> {
    Json(&'r Json),
    Str(&'r str),
    Double(f64),
    Bool(bool),
    /// The map named by a root with no fields selected (`args`, `hints`).
    Map,
}

impl Native {
    /// The native form of a compiled CEL expression, if it has one.
    pub fn compile(expression: &Expression) -> Option<Native> {
        match &expression.expr {
            Expr::Literal(LiteralValue::Boolean(b)) => Some(Native::Constant(**b)),
            Expr::Select(select) if select.test => {
                let mut path = Path::of(&select.operand)?;
                path.fields.push(select.field.clone());
                Some(Native::Has(path))
            }
            Expr::Select(_) | Expr::Ident(_) => Some(Native::Truthy(Path::of(expression)?)),
            Expr::Call(call) if call.target.is_none() => Native::call(call),
            _ => None,
        }
    }

    fn call(call: &CallExpr) -> Option<Native> {
        let boxed = |i: usize| Native::compile(&call.args[i]).map(Box::new);
        match (call.func_name.as_str(), call.args.len()) {
            (operators::LOGICAL_AND, 2) => Some(Native::And(boxed(0)?, boxed(1)?)),
            (operators::LOGICAL_OR, 2) => Some(Native::Or(boxed(0)?, boxed(1)?)),
            (operators::LOGICAL_NOT, 1) => Some(Native::Not(boxed(0)?)),
            (name, 2) => {
                let op = Op::of(name)?;
                if let (Some(path), Some(literal)) =
                    (Path::of(&call.args[0]), Literal::of(&call.args[1]))
                {
                    Some(Native::Compare(path, op, literal))
                } else {
                    let (literal, path) = (Literal::of(&call.args[0])?, Path::of(&call.args[1])?);
                    Some(Native::Compare(path, op.flipped(), literal))
                }
            }
            _ => None,
        }
    }

    /// The condition's value on `request`, or `None` where only CEL can say.
    pub fn evaluate(&self, request: &ProposedAction) -> Option<bool> {
        match self {
            Native::Constant(b) => Some(*b),
            Native::And(left, right) => match left.evaluate(request)? {
                false => Some(false),
                true => right.evaluate(request),
            },
            Native::Or(left, right) => match left.evaluate(request)? {
                true => Some(true),
                false => right.evaluate(request),
            },
            Native::Not(inner) => inner.evaluate(request).map(|b| !b),
            Native::Has(path) => path.has(request),
            Native::Truthy(path) => match path.find(request)? {
                Found::Bool(b) => Some(b),
                Found::Json(Json::Bool(b)) => Some(*b),
                _ => None,
            },
            Native::Compare(path, op, literal) => {
                let ordering = compare(&path.find(request)?, literal)?;
                let equality_only = matches!(literal, Literal::Bool(_));
                match op {
                    Op::Eq => Some(ordering == Ordering::Equal),
                    Op::Ne => Some(ordering != Ordering::Equal),
                    _ if equality_only => None,
                    Op::Lt => Some(ordering == Ordering::Less),
                    Op::Le => Some(ordering != Ordering::Greater),
                    Op::Gt => Some(ordering == Ordering::Greater),
                    Op::Ge => Some(ordering != Ordering::Less),
                }
            }
        }
    }
}

/// How `found` compares with `literal`, when both are of the same type.
fn compare(found: &Found<'_>, literal: &Literal) -> Option<Ordering> {
    match (found, literal) {
        (Found::Json(Json::Number(n)), Literal::Int(l)) => {
            // Integers that fit are CEL ints (see `condition::json_to_val`).
            Some(n.as_i64()?.cmp(l))
        }
        (Found::Json(Json::Number(n)), Literal::Double(l)) if n.is_f64() => {
            n.as_f64()?.partial_cmp(l)
        }
        (Found::Double(d), Literal::Double(l)) => d.partial_cmp(l),
        (Found::Json(Json::String(s)), Literal::String(l)) => Some(s.as_str().cmp(l.as_str())),
        (Found::Str(s), Literal::String(l)) => Some((*s).cmp(l.as_str())),
        (Found::Json(Json::Bool(b)), Literal::Bool(l)) | (Found::Bool(b), Literal::Bool(l)) => {
            Some(b.cmp(l))
        }
        _ => None,
    }
}

impl Op {
    fn of(name: &str) -> Option<Op> {
        Some(match name {
            operators::EQUALS => Op::Eq,
            operators::NOT_EQUALS => Op::Ne,
            operators::LESS => Op::Lt,
            operators::LESS_EQUALS => Op::Le,
            operators::GREATER => Op::Gt,
            operators::GREATER_EQUALS => Op::Ge,
            _ => return None,
        })
    }

    /// The operator with its operands swapped: `3 < x` is `x > 3`.
    fn flipped(self) -> Op {
        match self {
            Op::Eq | Op::Ne => self,
            Op::Lt => Op::Gt,
            Op::Le => Op::Ge,
            Op::Gt => Op::Lt,
            Op::Ge => Op::Le,
        }
    }
}

impl Literal {
    fn of(expression: &Expression) -> Option<Literal> {
        match &expression.expr {
            Expr::Literal(LiteralValue::Int(i)) => Some(Literal::Int(**i)),
            Expr::Literal(LiteralValue::Double(d)) => Some(Literal::Double(**d)),
            Expr::Literal(LiteralValue::String(s)) => Some(Literal::String(s.inner().to_owned())),
            Expr::Literal(LiteralValue::Boolean(b)) => Some(Literal::Bool(**b)),
            _ => None,
        }
    }
}

impl Path {
    fn of(expression: &Expression) -> Option<Path> {
        match &expression.expr {
            Expr::Ident(name) => {
                let root = match name.as_str() {
                    "action" => Root::Action,
                    "agent" => Root::Agent,
                    "args" => Root::Args,
                    "context" => Root::Context,
                    "confidence" => Root::Confidence,
                    "hints" => Root::Hints,
                    _ => return None,
                };
                Some(Path {
                    root,
                    fields: Vec::new(),
                })
            }
            Expr::Select(select) if !select.test => {
                let mut path = Path::of(&select.operand)?;
                path.fields.push(select.field.clone());
                Some(path)
            }
            _ => None,
        }
    }

    fn find<'r>(&self, request: &'r ProposedAction) -> Option<Found<'r>> {
        let (first, rest) = match self.fields.split_first() {
            None => {
                return match self.root {
                    Root::Action => Some(Found::Str(request.action.as_str())),
                    Root::Agent => Some(Found::Str(request.agent.as_str())),
                    Root::Confidence => request.confidence.map(|c| Found::Double(c.value())),
                    Root::Args | Root::Context | Root::Hints => Some(Found::Map),
                };
            }
            Some(split) => split,
        };
        match self.root {
            Root::Args => walk(&request.args, first, rest),
            Root::Context => walk(&request.context, first, rest),
            Root::Hints if rest.is_empty() => request
                .hints
                .entries()
                .find(|(name, _)| name == first)
                .map(|(_, value)| Found::Bool(value)),
            _ => None,
        }
    }

    fn has(&self, request: &ProposedAction) -> Option<bool> {
        let (last, parents) = self.fields.split_last()?;
        if self.root == Root::Hints {
            return parents
                .is_empty()
                .then(|| request.hints.entries().any(|(name, _)| name == last));
        }
        let map = match self.root {
            Root::Args => &request.args,
            Root::Context => &request.context,
            _ => return None,
        };
        let parent = match parents.split_first() {
            None => map,
            Some((first, rest)) => match walk(map, first, rest)? {
                Found::Json(Json::Object(object)) => object,
                _ => return None,
            },
        };
        Some(parent.contains_key(last))
    }
}

/// Selects `first`, then `rest`, from `map`; `None` at the first missing key or non-map.
fn walk<'r>(map: &'r Map<String, Json>, first: &str, rest: &[String]) -> Option<Found<'r>> {
    let mut value = map.get(first)?;
    for field in rest {
        value = value.as_object()?.get(field)?;
    }
    Some(Found::Json(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{ActionName, AgentName, Confidence};
    use crate::policy::condition::{Bindings, Condition};
    use chrono::Utc;
    use proptest::prelude::*;
    use serde_json::json;

    const CONDITIONS: &[&str] = &[
        "args.n > 5",
        "5 < args.n",
        "args.n >= 2 && args.n <= 4",
        "has(args.n) && args.n == 3",
        "!has(args.n) || args.n != 3",
        "args.x == 2.5",
        "args.x < 1.0",
        "args.n == 2.5",
        "args.s == 'x'",
        "args.s < 'b'",
        "args.s != 'y'",
        "args.b == true",
        "args.b",
        "!args.b",
        "args.b < true",
        "args.o.k == 1",
        "has(args.o.k)",
        "has(args.o)",
        "context.k == 1 || context.k == 'x'",
        "hints.destructive",
        "has(hints.destructive) && hints.destructive",
        "!has(hints.read_only) || !hints.read_only",
        "hints.destructive == false",
        "confidence < 0.5",
        "confidence >= 0.5 && args.n > 0",
        "action == 'refund.create'",
        "agent != 'bot'",
        "args.n > 5 && args.s == 'x' || args.b",
        "true && args.n > 1",
        "false || args.missing > 1",
        "args.missing > 1 && false",
        "args.n > 1 || args.missing",
    ];

    fn json_value() -> impl Strategy<Value = Option<Json>> {
        prop::option::of(prop_oneof![
            (-3i64..8).prop_map(|n| json!(n)),
            prop::sample::select(vec![2.5, 0.5, -1.0, 3.0]).prop_map(|d| json!(d)),
            prop::sample::select(vec!["x", "y", "a", "b", ""]).prop_map(|s| json!(s)),
            any::<bool>().prop_map(|b| json!(b)),
            Just(Json::Null),
            Just(json!([1, 2])),
            (-1i64..3).prop_map(|k| json!({ "k": k })),
            Just(json!(u64::MAX)),
        ])
    }

    fn request() -> impl Strategy<Value = ProposedAction> {
        (
            [
                json_value(),
                json_value(),
                json_value(),
                json_value(),
                json_value(),
            ],
            json_value(),
            prop::option::of(0u8..=10),
            [
                prop::option::of(any::<bool>()),
                prop::option::of(any::<bool>()),
            ],
            prop::sample::select(vec!["refund.create", "email.send"]),
        )
            .prop_map(|(values, k, confidence, hints, action)| {
                let mut r = ProposedAction::new(
                    ActionName::parse(action).unwrap(),
                    AgentName::parse("bot").unwrap(),
                );
                for (name, value) in ["n", "x", "s", "b", "o"].into_iter().zip(values) {
                    if let Some(value) = value {
                        r.args.insert(name.into(), value);
                    }
                }
                if let Some(k) = k {
                    r.context.insert("k".into(), k);
                }
                r.confidence = confidence.map(|c| Confidence::new(f64::from(c) / 10.0).unwrap());
                r.hints.destructive = hints[0];
                r.hints.read_only = hints[1];
                r
            })
    }

    #[test]
    fn every_listed_condition_has_a_native_form() {
        for source in CONDITIONS {
            assert!(
                Condition::compile(source).unwrap().native().is_some(),
                "{source}"
            );
        }
        for source in [
            "args.n + 1 == 3",
            "action.startsWith('a')",
            "now > now",
            "size(args) > 1",
        ] {
            assert!(
                Condition::compile(source).unwrap().native().is_none(),
                "{source}"
            );
        }
    }

    #[test]
    fn answers_where_cel_cannot_differ_and_only_there() {
        let mut r = ProposedAction::new(
            ActionName::parse("refund.create").unwrap(),
            AgentName::parse("bot").unwrap(),
        );
        r.args = json!({"n": 3, "x": 2.5, "s": "x", "b": true, "o": {"k": 1}})
            .as_object()
            .unwrap()
            .clone();
        r.hints.destructive = Some(true);
        let cases = [
            ("args.n > 5", Some(false)),
            ("5 > args.n", Some(true)),
            ("has(args.n) && args.n == 3", Some(true)),
            ("args.x == 2.5", Some(true)),
            ("args.s < 'y'", Some(true)),
            ("args.b && args.o.k == 1", Some(true)),
            ("has(args.o.k) && !has(args.o.z)", Some(true)),
            ("has(hints.destructive) && hints.destructive", Some(true)),
            ("has(hints.read_only)", Some(false)),
            ("action == 'refund.create' && agent != 'x'", Some(true)),
            // CEL decides: a missing key, mixed number types, an absent confidence, a
            // bool compared for order.
            ("args.missing > 1", None),
            ("args.n == 3.0", None),
            ("confidence < 0.5", None),
            ("args.b < true", None),
            ("hints.read_only", None),
            ("args.missing > 1 || args.n == 3", None),
            ("args.n == 3 || args.missing > 1", Some(true)),
        ];
        for (source, expected) in cases {
            let condition = Condition::compile(source).unwrap();
            assert_eq!(condition.evaluate_natively(&r), expected, "{source}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        /// Wherever the native evaluator answers, CEL gives the same bool.
        #[test]
        fn native_answers_agree_with_cel(r in request()) {
            for source in CONDITIONS {
                let condition = Condition::compile(source).unwrap();
                let Some(native) = condition.native().and_then(|n| n.evaluate(&r)) else {
                    continue;
                };
                let mut bindings = Bindings::new(&r, Utc::now());
                bindings.bind(condition.uses());
                prop_assert_eq!(
                    condition.evaluate(&bindings),
                    Ok(native),
                    "{} on args {:?} context {:?} hints {:?} confidence {:?}",
                    source, r.args, r.context, r.hints, r.confidence
                );
            }
        }
    }
}
