//! The names a condition reads from outside: its free identifiers. The variables bound by a
//! comprehension macro (`i` in `args.items.exists(i, i.price > 100)`) and CEL's type names
//! (`int` in `type(args.amount) == int`, `google.protobuf.Timestamp`) are not policy
//! variables; everything else is, and must be one of SPEC section 2's.
//!
//! The `cel` crate's own `references()` lists every identifier, bound or not, so a policy
//! using `exists`, `all`, `exists_one`, `map` or `filter` was refused as using an unknown
//! variable.

use cel::TypeRegistry;
use cel::common::ast::{EntryExpr, Expr, IdedExpr};

/// The free identifiers of `expression`, each once, in order of first use.
pub(super) fn free_names(expression: &IdedExpr, types: &TypeRegistry) -> Vec<String> {
    let mut walk = Walk {
        types,
        bound: Vec::new(),
        free: Vec::new(),
    };
    walk.expression(expression);
    walk.free
}

struct Walk<'a> {
    types: &'a TypeRegistry,
    /// Comprehension variables in scope, innermost last.
    bound: Vec<&'a str>,
    free: Vec<String>,
}

impl<'a> Walk<'a> {
    fn expression(&mut self, expression: &'a IdedExpr) {
        match &expression.expr {
            Expr::Unspecified | Expr::Literal(_) => {}
            Expr::Ident(name) => self.identifier(name),
            Expr::Select(select) => {
                // `google.protobuf.Timestamp`: a qualified type name, not a field of a variable.
                if qualified_name(expression).is_some_and(|name| self.is_type(&name)) {
                    return;
                }
                self.expression(&select.operand);
            }
            Expr::Call(call) => {
                if let Some(target) = &call.target {
                    self.expression(target);
                }
                for argument in &call.args {
                    self.expression(argument);
                }
            }
            Expr::Comprehension(comprehension) => {
                // The range and the initial accumulator are read outside the loop's scope.
                self.expression(&comprehension.iter_range);
                self.expression(&comprehension.accu_init);
                let depth = self.bound.len();
                self.bound.push(&comprehension.iter_var);
                if let Some(second) = &comprehension.iter_var2 {
                    self.bound.push(second);
                }
                self.bound.push(&comprehension.accu_var);
                self.expression(&comprehension.loop_cond);
                self.expression(&comprehension.loop_step);
                self.expression(&comprehension.result);
                self.bound.truncate(depth);
            }
            Expr::List(list) => {
                for element in &list.elements {
                    self.expression(element);
                }
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    self.entry(&entry.expr);
                }
            }
            Expr::Struct(structure) => {
                for entry in &structure.entries {
                    self.entry(&entry.expr);
                }
            }
        }
    }

    fn entry(&mut self, entry: &'a EntryExpr) {
        match entry {
            EntryExpr::StructField(field) => self.expression(&field.value),
            EntryExpr::MapEntry(entry) => {
                self.expression(&entry.key);
                self.expression(&entry.value);
            }
        }
    }

    fn identifier(&mut self, name: &'a str) {
        // `@`-names are the parser's own (macro accumulators).
        if name.starts_with('@')
            || self.bound.contains(&name)
            || self.is_type(name)
            || self.free.iter().any(|f| f == name)
        {
            return;
        }
        self.free.push(name.to_owned());
    }

    fn is_type(&self, name: &str) -> bool {
        self.types.find_type(name).is_some()
    }
}

/// `a.b.c` for a chain of field selections on an identifier.
fn qualified_name(expression: &IdedExpr) -> Option<String> {
    let mut segments = Vec::new();
    let mut expr = &expression.expr;
    loop {
        match expr {
            Expr::Ident(name) => {
                segments.push(name.as_str());
                segments.reverse();
                return Some(segments.join("."));
            }
            Expr::Select(select) if !select.test => {
                segments.push(select.field.as_str());
                expr = &select.operand.expr;
            }
            _ => return None,
        }
    }
}
