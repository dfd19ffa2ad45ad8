//! Problems found in a policy (or policy-test) file, each tied to where it is, rendered the
//! way a compiler reports them.

use std::fmt::{self, Write as _};
use std::ops::Range;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// One problem: what is wrong, where, and (when we can tell) what was probably meant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable, greppable name for the kind of problem, e.g. `unknown-key`.
    pub code: &'static str,
    pub message: String,
    /// Byte range in the source.
    pub span: Range<usize>,
    /// 1-based line and column (in characters) of `span.start`.
    pub line: usize,
    pub column: usize,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic with a source excerpt and a caret line, naming the file
    /// `path`.
    pub fn render(&self, path: &str, source: &str) -> String {
        let mut out = String::new();
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "{label}[{}]: {}", self.code, self.message);
        let _ = writeln!(out, "  --> {path}:{}:{}", self.line, self.column);
        if let Some(text) = source.lines().nth(self.line.saturating_sub(1)) {
            let gutter = self.line.to_string().len();
            let pad = " ".repeat(gutter);
            let width = {
                let line_end = text.len();
                let start_in_line = column_byte_offset(text, self.column);
                let end = (start_in_line + self.span.len()).min(line_end);
                // A span may end inside a multi-byte character (positions inside CEL
                // conditions are one byte wide): widen to the next boundary.
                let end = (end..=line_end)
                    .find(|&e| text.is_char_boundary(e))
                    .unwrap_or(line_end);
                text.get(start_in_line..end)
                    .map_or(1, |s| s.chars().count().max(1))
            };
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{} | {}", self.line, text);
            let _ = writeln!(
                out,
                "{pad} | {}{}",
                " ".repeat(self.column.saturating_sub(1)),
                "^".repeat(width)
            );
        }
        if let Some(help) = &self.help {
            let _ = writeln!(out, "   = help: {help}");
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

fn column_byte_offset(line: &str, column: usize) -> usize {
    line.char_indices()
        .nth(column.saturating_sub(1))
        .map_or(line.len(), |(i, _)| i)
}

/// Turns byte offsets into line and column numbers for one source text.
pub(crate) struct LineIndex<'s> {
    source: &'s str,
    line_starts: Vec<usize>,
}

impl<'s> LineIndex<'s> {
    pub fn new(source: &'s str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex {
            source,
            line_starts,
        }
    }

    /// 1-based line and character column of byte `offset`.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.source.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let column = self
            .source
            .get(start..offset)
            .map_or(1, |s| s.chars().count() + 1);
        (line + 1, column)
    }
}

/// Collects diagnostics for one source text.
pub(crate) struct Reporter<'s> {
    index: LineIndex<'s>,
    pub diagnostics: Vec<Diagnostic>,
}

impl<'s> Reporter<'s> {
    pub fn new(source: &'s str) -> Self {
        Reporter {
            index: LineIndex::new(source),
            diagnostics: Vec::new(),
        }
    }

    pub fn index(&self) -> &LineIndex<'s> {
        &self.index
    }

    pub fn error(&mut self, code: &'static str, span: Range<usize>, message: impl Into<String>) {
        self.push(Severity::Error, code, span, message.into(), None);
    }

    pub fn error_with_help(
        &mut self,
        code: &'static str,
        span: Range<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.push(
            Severity::Error,
            code,
            span,
            message.into(),
            Some(help.into()),
        );
    }

    pub fn warning(&mut self, code: &'static str, span: Range<usize>, message: impl Into<String>) {
        self.push(Severity::Warning, code, span, message.into(), None);
    }

    pub fn push(
        &mut self,
        severity: Severity,
        code: &'static str,
        span: Range<usize>,
        message: String,
        help: Option<String>,
    ) {
        let (line, column) = self.index.position(span.start);
        self.diagnostics.push(Diagnostic {
            severity,
            code,
            message,
            span,
            line,
            column,
            help,
        });
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The diagnostics in source order.
    pub fn finish(mut self) -> Vec<Diagnostic> {
        self.diagnostics
            .sort_by_key(|d| (d.span.start, d.severity == Severity::Warning));
        self.diagnostics
    }
}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions() {
        let index = LineIndex::new("ab\ncdé\nf");
        assert_eq!(index.position(0), (1, 1));
        assert_eq!(index.position(3), (2, 1));
        assert_eq!(index.position(7), (2, 4));
        assert_eq!(index.position(8), (3, 1));
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("tire", &["tier", "name", "when"]),
            Some("tier")
        );
        assert_eq!(
            did_you_mean("aprovers", &["approvers", "agents"]),
            Some("approvers")
        );
        assert_eq!(did_you_mean("zzzzzz", &["tier", "name"]), None);
    }
}
