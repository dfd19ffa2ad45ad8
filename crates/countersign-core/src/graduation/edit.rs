//! Proposals as edits of the policy's TOML text: the rest of the file — comments, order,
//! formatting — stays as it was. A relaxation or tightening of a rule that names only that
//! action changes the rule's `tier` line in place; otherwise a new rule for that action
//! alone goes right before the rule it narrows (so that it only ever sees what that rule
//! would have seen), or at the end for `[defaults]`. Every result is parsed again, and
//! an edit whose result does not parse, or does not say what was meant, is refused
//! rather than shown.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::evidence::percent;
use super::suggest::{Proposal, ProposalKind, rule_of};
use crate::policy::{Policy, Rule};

/// Replaces `remove` lines from line `start` (0-based) with `insert`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edit {
    pub start: usize,
    pub remove: usize,
    pub insert: Vec<String>,
}

/// A proposal that could not be written into the file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("rule {0:?} is not a `[[rules]]` table in this file; edit it by hand")]
    NotATable(String),
    #[error("rule {0:?} has no `tier = ...` line of its own")]
    NoTierLine(String),
    #[error("the policy has no rule named {0:?}")]
    NoSuchRule(String),
    #[error("the edited policy does not load: {0}")]
    Invalid(String),
}

/// The edits that make `proposal` in `source` (whose parsed form is `policy`), with the
/// evidence as comments. `at` dates the comment.
pub fn plan(
    source: &str,
    policy: &Policy,
    proposal: &Proposal,
    at: DateTime<Utc>,
) -> Result<Vec<Edit>, EditError> {
    let lines: Vec<&str> = source.lines().collect();
    let comments = evidence_comments(proposal, at);
    let Some(rule_name) = &proposal.key.rule else {
        // `[defaults]`: a rule at the end catches exactly what reached the defaults.
        let mut insert = vec![String::new()];
        insert.extend(comments);
        insert.extend(new_rule(policy, None, proposal));
        return Ok(vec![Edit {
            start: lines.len(),
            remove: 0,
            insert,
        }]);
    };
    let rule =
        rule_of(policy, &proposal.key).ok_or_else(|| EditError::NoSuchRule(rule_name.clone()))?;
    let header = rule.line.saturating_sub(1);
    if !lines
        .get(header)
        .is_some_and(|l| l.trim_start().starts_with("[[rules]]"))
    {
        return Err(EditError::NotATable(rule_name.clone()));
    }
    let end = section_end(&lines, header);
    let only_this_action =
        rule.actions.len() == 1 && rule.actions[0].literal() == Some(proposal.key.action.as_str());
    if only_this_action && proposal.narrowing.is_none() {
        return in_place(&lines, header, end, rule, proposal, comments);
    }
    // A new rule right before this one (and before the comments that introduce it).
    let mut start = header;
    while start > 0 && lines[start - 1].trim_start().starts_with('#') {
        start -= 1;
    }
    let mut insert = comments;
    insert.extend(new_rule(policy, Some(rule), proposal));
    insert.push(String::new());
    Ok(vec![Edit {
        start,
        remove: 0,
        insert,
    }])
}

/// Changes the rule's `tier` line (and `review_sample`) where it stands.
fn in_place(
    lines: &[&str],
    header: usize,
    end: usize,
    rule: &Rule,
    proposal: &Proposal,
    comments: Vec<String>,
) -> Result<Vec<Edit>, EditError> {
    let key_line = |key: &str| {
        (header + 1..end).find(|&i| {
            let line = lines[i].trim_start();
            line.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
    };
    let tier_line = key_line("tier").ok_or_else(|| EditError::NoTierLine(rule.name.clone()))?;
    let indent: String = lines[tier_line]
        .chars()
        .take_while(|c| c.is_whitespace())
        .collect();
    let mut edits = Vec::new();
    let mut replacement = vec![format!("{indent}tier = \"{}\"", proposal.to)];
    if let Some(sample) = proposal.review_sample {
        replacement.push(format!("{indent}review_sample = {sample}"));
    }
    if let Some(sample_line) = key_line("review_sample") {
        edits.push(Edit {
            start: sample_line,
            remove: 1,
            insert: Vec::new(),
        });
    }
    edits.push(Edit {
        start: tier_line,
        remove: 1,
        insert: replacement,
    });
    let mut start = header;
    while start > 0 && lines[start - 1].trim_start().starts_with('#') {
        start -= 1;
    }
    edits.push(Edit {
        start,
        remove: 0,
        insert: comments,
    });
    Ok(edits)
}

/// The first line after the table that starts at `header`: the next table header, or the
/// end of the file, less the comments and blank lines that lead into the next table.
fn section_end(lines: &[&str], header: usize) -> usize {
    let mut end = (header + 1..lines.len())
        .find(|&i| lines[i].trim_start().starts_with('['))
        .unwrap_or(lines.len());
    while end > header + 1 {
        let line = lines[end - 1].trim();
        if line.is_empty() || line.starts_with('#') {
            end -= 1;
        } else {
            break;
        }
    }
    end
}

/// A new rule for the proposal's action alone: the original rule's agents, condition (and
/// the narrowing bound) and approver groups, so that it never matches more than the rule
/// did and never lets other people decide the actions it still escalates.
fn new_rule(policy: &Policy, rule: Option<&Rule>, proposal: &Proposal) -> Vec<String> {
    let suffix = match proposal.kind {
        ProposalKind::Tighten => "tightened",
        _ => "graduated",
    };
    let base = match rule {
        Some(rule) => format!("{}: {} ({suffix})", rule.name, proposal.key.action),
        None => format!("{} ({suffix})", proposal.key.action),
    };
    let mut name = base.clone();
    let mut n = 2;
    while policy.rules.iter().any(|r| r.name == name) {
        name = format!("{base} {n}");
        n += 1;
    }
    let mut out = vec![
        "[[rules]]".to_owned(),
        format!("name = {}", toml_string(&name)),
        format!("actions = [{}]", toml_string(&proposal.key.action)),
    ];
    if let Some(rule) = rule
        && !rule.agents.is_empty()
    {
        let agents: Vec<String> = rule
            .agents
            .iter()
            .map(|g| toml_string(g.as_str()))
            .collect();
        out.push(format!("agents = [{}]", agents.join(", ")));
    }
    let original = rule
        .and_then(|r| r.when.as_ref())
        .map(|c| c.source().to_owned());
    let narrowing = proposal.narrowing.as_ref().map(|(n, _)| n.condition());
    let when = match (original, narrowing) {
        (Some(o), Some(n)) => Some(format!("({o}) && {n}")),
        (o, n) => o.or(n),
    };
    if let Some(when) = when {
        out.push(format!("when = {}", toml_string(&when)));
    }
    out.push(format!("tier = \"{}\"", proposal.to));
    if let Some(sample) = proposal.review_sample {
        out.push(format!("review_sample = {sample}"));
    }
    if let Some(rule) = rule {
        if !rule.approvers.is_empty() {
            let groups: Vec<String> = rule
                .approvers
                .iter()
                .map(|g| toml_string(g.as_str()))
                .collect();
            out.push(format!("approvers = [{}]", groups.join(", ")));
        }
        if let Some(minimum) = rule.min_confidence {
            out.push(format!("min_confidence = {minimum}"));
        }
    }
    out
}

fn evidence_comments(proposal: &Proposal, at: DateTime<Utc>) -> Vec<String> {
    let verb = match proposal.kind {
        ProposalKind::Tighten => "tightened",
        _ => "relaxed",
    };
    let mut out = vec![format!(
        "# {verb} {} -> {} by `countersign policy suggest` on {}:",
        proposal.from,
        proposal.to,
        at.format("%Y-%m-%d")
    )];
    let evidence = &proposal.evidence;
    out.push(format!("#   {}", evidence.summary()));
    if let Some((narrowing, below)) = &proposal.narrowing {
        out.push(format!(
            "#   below {} = {}: {} decisions, none corrected (error rate at most {})",
            narrowing.arg,
            narrowing.below,
            below.decisions(),
            percent(below.error_upper())
        ));
    }
    if let Some(last) = evidence.last_decided {
        out.push(format!(
            "#   latest decision or review: {}",
            last.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    out
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `source` with `edits` applied (non-overlapping; several at one line go in the order
/// given).
pub fn apply(source: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = source.lines().map(str::to_owned).collect();
    let mut order: Vec<usize> = (0..edits.len()).collect();
    // From the bottom up, so that earlier positions stay valid; at one position, the last
    // edit first, so that they end up in the order given.
    order.sort_by(|&a, &b| edits[b].start.cmp(&edits[a].start).then(b.cmp(&a)));
    for i in order {
        let edit = &edits[i];
        let start = edit.start.min(lines.len());
        let end = (start + edit.remove).min(lines.len());
        lines.splice(start..end, edit.insert.iter().cloned());
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Applies `edits` and checks that the result loads and gives each proposal's rule the
/// tier it proposed.
pub fn apply_checked(
    source: &str,
    edits: &[Edit],
    proposals: &[&Proposal],
) -> Result<(String, Policy), EditError> {
    let text = apply(source, edits);
    let policy = Policy::parse(&text).map_err(|e| EditError::Invalid(e.to_string()))?;
    for proposal in proposals {
        let expected = proposal.to;
        let any = policy
            .rules
            .iter()
            .any(|r| r.tier == expected && r.matches_action(&proposal.key.action));
        let by_defaults = proposal.key.rule.is_none() && policy.defaults.tier == expected;
        if !(any || by_defaults) {
            return Err(EditError::Invalid(format!(
                "no rule gives {} the tier {expected}",
                proposal.key.action
            )));
        }
    }
    Ok((text, policy))
}

/// A unified diff of `edits` against `source`, three lines of context.
pub fn unified_diff(source: &str, edits: &[Edit], old_name: &str, new_name: &str) -> String {
    let old: Vec<&str> = source.lines().collect();
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| e.start);
    // Group edits whose context overlaps into hunks.
    let mut hunks: Vec<Vec<&Edit>> = Vec::new();
    for edit in sorted {
        match hunks.last_mut() {
            Some(hunk) if edit.start <= hunk.last().map_or(0, |e| e.start + e.remove) + 6 => {
                hunk.push(edit)
            }
            _ => hunks.push(vec![edit]),
        }
    }
    let mut out = format!("--- {old_name}\n+++ {new_name}\n");
    let mut shift: isize = 0;
    for hunk in hunks {
        let first = hunk[0].start;
        let last = hunk
            .iter()
            .map(|e| e.start + e.remove)
            .max()
            .unwrap_or(first);
        let from = first.saturating_sub(3);
        let to = (last + 3).min(old.len());
        let mut body = Vec::new();
        let mut old_count = 0;
        let mut new_count = 0;
        let mut line = from;
        for edit in &hunk {
            while line < edit.start.min(old.len()) {
                body.push(format!(" {}", old[line]));
                old_count += 1;
                new_count += 1;
                line += 1;
            }
            for removed in old.iter().skip(edit.start).take(edit.remove) {
                body.push(format!("-{removed}"));
                old_count += 1;
            }
            line = line.max(edit.start + edit.remove);
            for added in &edit.insert {
                body.push(format!("+{added}"));
                new_count += 1;
            }
        }
        while line < to {
            body.push(format!(" {}", old[line]));
            old_count += 1;
            new_count += 1;
            line += 1;
        }
        let new_from = (from as isize + shift).max(0) as usize;
        let _ = writeln!(
            out,
            "@@ -{},{} +{},{} @@",
            from + usize::from(old_count > 0),
            old_count,
            new_from + usize::from(new_count > 0),
            new_count
        );
        for line in body {
            out.push_str(&line);
            out.push('\n');
        }
        shift += new_count as isize - old_count as isize;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tier::Tier;

    fn tier_of(policy: &Policy, name: &str) -> Option<Tier> {
        policy.rules.iter().find(|r| r.name == name).map(|r| r.tier)
    }
    use crate::graduation::{Evidence, GroupKey, Thresholds, suggest};

    const POLICY: &str = r#"version = 1

[defaults]
tier = "approve"

# Refunds: people decide.
[[rules]]
name = "refunds"
actions = ["refund.create"]
tier = "approve"
approvers = ["support-leads"]
sla = "15m"

[[rules]]
name = "mail"
actions = ["email.send", "email.reply"]
agents = ["support-*"]
tier = "approve"

[[rules]]
name = "notes"
actions = ["note.add"]
tier = "logged"
review_sample = 0.2
"#;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn clean(rule: &str, action: &str, n: u64) -> Evidence {
        let mut e = Evidence::new(GroupKey {
            rule: Some(rule.to_owned()),
            action: action.to_owned(),
        });
        e.add_tier(Tier::Approve, n);
        e.approved = n;
        e
    }

    #[test]
    fn relaxes_a_single_action_rule_in_place() {
        let policy = Policy::parse(POLICY).unwrap();
        let found = suggest(
            &policy,
            &[clean("refunds", "refund.create", 100)],
            &Thresholds::default(),
        );
        assert_eq!(found.proposals.len(), 1);
        let edits = plan(POLICY, &policy, &found.proposals[0], at()).unwrap();
        let (text, edited) = apply_checked(POLICY, &edits, &[&found.proposals[0]]).unwrap();
        assert_eq!(tier_of(&edited, "refunds"), Some(Tier::Logged));
        assert!(text.contains("review_sample = 0.1"));
        assert!(text.contains("# Refunds: people decide."));
        let diff = unified_diff(POLICY, &edits, "a", "b");
        assert!(
            diff.contains("-tier = \"approve\"\n+tier = \"logged\"\n+review_sample = 0.1"),
            "{diff}"
        );
    }

    #[test]
    fn a_shared_rule_gets_a_new_rule_in_front() {
        let policy = Policy::parse(POLICY).unwrap();
        let found = suggest(
            &policy,
            &[clean("mail", "email.reply", 100)],
            &Thresholds::default(),
        );
        let edits = plan(POLICY, &policy, &found.proposals[0], at()).unwrap();
        let (_, edited) = apply_checked(POLICY, &edits, &[&found.proposals[0]]).unwrap();
        let new = edited
            .rules
            .iter()
            .position(|r| r.name == "mail: email.reply (graduated)")
            .unwrap();
        let old = edited.rules.iter().position(|r| r.name == "mail").unwrap();
        assert_eq!(new + 1, old);
        assert_eq!(edited.rules[new].agents[0].as_str(), "support-*");
        assert_eq!(edited.rules[old].tier, Tier::Approve);
    }

    #[test]
    fn tightening_removes_the_sample() {
        let policy = Policy::parse(POLICY).unwrap();
        let mut e = clean("notes", "note.add", 0);
        e.reviewed = 20;
        e.flagged = 6;
        let found = suggest(&policy, &[e], &Thresholds::default());
        assert_eq!(found.proposals[0].kind, ProposalKind::Tighten);
        let edits = plan(POLICY, &policy, &found.proposals[0], at()).unwrap();
        let (text, edited) = apply_checked(POLICY, &edits, &[&found.proposals[0]]).unwrap();
        assert_eq!(tier_of(&edited, "notes"), Some(Tier::Approve));
        assert!(!text.contains("review_sample = 0.2"));
        assert!(crate::policy::check(&text).diagnostics.is_empty());
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(toml_string("a\"b\\c"), r#""a\"b\\c""#);
    }
}
