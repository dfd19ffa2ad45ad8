//! Where the parts of the policy file are written: what the parser records for the
//! cross-rule checks of [`super::super::lint`] to point at.

use std::ops::Range;

/// Where the parts of a rule are written, for the cross-rule checks.
pub(in crate::policy) struct RuleSpans {
    pub header: Range<usize>,
    pub name: Range<usize>,
    pub tier: Range<usize>,
    pub actions: Vec<Range<usize>>,
    pub on_timeout: Option<Range<usize>>,
    /// The rule had errors of its own: it is linted against the others (names, timeouts)
    /// but never trusted to shadow them.
    pub broken: bool,
    /// Its tier was missing or invalid (a placeholder stands in).
    pub tier_unknown: bool,
}

/// The same for `[defaults]`.
#[derive(Default)]
pub(in crate::policy) struct DefaultSpans {
    pub table: Range<usize>,
    pub tier: Option<Range<usize>>,
    pub on_timeout: Option<Range<usize>>,
    /// Whether `[defaults]` sets `on_timeout` itself.
    pub on_timeout_set: bool,
}
