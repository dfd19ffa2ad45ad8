//! `when` conditions in the policy file: compiled, with CEL's errors mapped back to the
//! line and column of the file.

use std::ops::Range;

use crate::policy::condition::{Condition, ConditionError, Variable};
use crate::policy::diagnostic::{Reporter, did_you_mean};

pub(super) fn compile_condition(
    report: &mut Reporter<'_>,
    source: &str,
    text: &str,
    span: Range<usize>,
    place: &str,
) -> Option<Condition> {
    if text.trim().is_empty() {
        report.error(
            "empty-when",
            span,
            format!("`when` {place} is empty; leave it out to match always"),
        );
        return None;
    }
    let errors = match Condition::compile(text) {
        Ok(condition) => return Some(condition),
        Err(errors) => errors,
    };
    let literal = StringLiteral::locate(source, span.clone(), text);
    for error in errors {
        match error {
            ConditionError::Syntax {
                message,
                line,
                column,
            } => {
                let at = literal.offset_of(text, line, column);
                report.error(
                    "cel-syntax",
                    at..at + 1,
                    format!("syntax error in `when` {place}: {message}"),
                );
            }
            ConditionError::UnknownVariable { name } => {
                let at = literal.offset_of_word(text, &name);
                let help = match did_you_mean(&name, &Variable::NAMES) {
                    Some(s) => format!(
                        "did you mean `{s}`? The variables are: {}",
                        Variable::NAMES.join(", ")
                    ),
                    None => format!("the variables are: {}", Variable::NAMES.join(", ")),
                };
                report.error_with_help(
                    "cel-unknown-variable",
                    at..at + name.len(),
                    format!("`when` {place} uses `{name}`, which is not a variable"),
                    help,
                );
            }
        }
    }
    None
}

/// Maps positions inside a string value back to the file, when the string was written
/// without escapes (then the text in the file is the value itself). Otherwise positions
/// point at the start of the string.
struct StringLiteral {
    start: usize,
    /// Byte offset in the file where the value's text begins, when it is verbatim.
    verbatim_at: Option<usize>,
}

impl StringLiteral {
    fn locate(source: &str, span: Range<usize>, value: &str) -> StringLiteral {
        let raw = source.get(span.clone()).unwrap_or("");
        let verbatim_at = ["\"\"\"\n", "'''\n", "\"\"\"", "'''", "\"", "'"]
            .iter()
            .find(|quote| raw.starts_with(**quote))
            .and_then(|quote| {
                let body = &raw[quote.len()..];
                body.starts_with(value).then_some(span.start + quote.len())
            });
        StringLiteral {
            start: span.start,
            verbatim_at,
        }
    }

    fn offset_of(&self, text: &str, line: usize, column: usize) -> usize {
        let Some(base) = self.verbatim_at else {
            return self.start;
        };
        let line_start: usize = text
            .split_inclusive('\n')
            .take(line.saturating_sub(1))
            .map(str::len)
            .sum();
        let in_line = text[line_start..]
            .char_indices()
            .nth(column.saturating_sub(1))
            .map_or(text.len() - line_start, |(i, _)| i);
        base + line_start + in_line
    }

    fn offset_of_word(&self, text: &str, word: &str) -> usize {
        let Some(base) = self.verbatim_at else {
            return self.start;
        };
        let bytes = text.as_bytes();
        let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let found = text.match_indices(word).find(|(i, _)| {
            let before_ok = *i == 0 || (!is_ident(bytes[i - 1]) && bytes[i - 1] != b'.');
            let after = i + word.len();
            let after_ok = after >= bytes.len() || !is_ident(bytes[after]);
            before_ok && after_ok
        });
        found.map_or(self.start, |(i, _)| base + i)
    }
}
