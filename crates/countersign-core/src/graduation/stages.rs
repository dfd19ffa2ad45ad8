//! Starting policies for each step of the seed's graduation path (`countersign policy init
//! --stage ...`): launch (every write approved), early production (low-risk writes logged
//! and sampled), mature operation (only irreversible and high-value actions approved,
//! low confidence escalated). Each says in comments what evidence the next step needs;
//! the last step, data-driven triggers, is what `countersign policy suggest` proposes.

/// One step of the graduation path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage {
    pub name: &'static str,
    /// One line for `--help` and listings.
    pub summary: &'static str,
    pub policy: &'static str,
}

/// The steps, in order.
pub const STAGES: &[Stage] = &[
    Stage {
        name: "launch",
        summary: "every action that is not a read needs a person's approval",
        policy: LAUNCH,
    },
    Stage {
        name: "early",
        summary: "low-risk writes run at once, logged and sampled; high-risk writes need approval",
        policy: EARLY,
    },
    Stage {
        name: "mature",
        summary: "only irreversible or high-value actions need approval; low confidence escalates",
        policy: MATURE,
    },
];

impl Stage {
    pub fn named(name: &str) -> Option<&'static Stage> {
        STAGES.iter().find(|s| s.name == name)
    }
}

const LAUNCH: &str = r#"# Countersign policy: launch stage (graduation path step 1 of 4).
#
# Every action that is not a read waits for a person. This is where a new agent starts:
# it has no track record yet, and every decision reviewers make now is the evidence that
# later steps rely on.
#
# Next step (`countersign policy init --stage early`) needs, per action type you want to
# let run on its own: at least 50 decisions in the last 30 days, and a 95% upper bound of
# the error rate (rejected + modified, of decided) under 5% -- with no corrections at all
# that is about 75 decisions. `countersign policy suggest policy.toml` computes this from
# the database and `countersign policy replay` shows which past mistakes a change would have
# let through.
version = 1

[defaults]
tier = "approve"          # anything no rule names: a person decides
sla = "30m"
on_timeout = "reject"     # never approve by default

[[rules]]
name = "reads"
actions = ["*.get", "*.list", "*.search", "*.read", "*.describe"]
tier = "auto"

[[rules]]
name = "irreversible"
actions = ["*.delete", "account.close", "*.destroy"]
tier = "confirm"          # two different people, each re-typing the action name
"#;

const EARLY: &str = r#"# Countersign policy: early production (graduation path step 2 of 4).
#
# Low-risk writes run at once and are logged; a sample goes to post-hoc review, whose
# flags are the evidence that keeps them there. High-risk writes still need approval.
#
# Stay here while post-hoc reviews flag low-risk writes rarely: Countersign warns
# (`graduation_regressed`) when the 95% lower bound of a logged rule's flag rate crosses
# 5% over at least 20 reviews, and `countersign policy suggest` then proposes the revert.
#
# Next step (`countersign policy init --stage mature`) needs, per high-risk action type:
# at least 50 decisions in 30 days with the error rate's 95% upper bound under 5%, or a
# clean split on an argument (e.g. every rejected refund was above some amount, and the
# ones below it were never corrected), which `countersign policy suggest` finds.
version = 1

[defaults]
tier = "approve"
sla = "30m"
on_timeout = "reject"

[[rules]]
name = "reads"
actions = ["*.get", "*.list", "*.search", "*.read", "*.describe"]
tier = "auto"

[[rules]]
name = "irreversible"
actions = ["*.delete", "account.close", "*.destroy"]
tier = "confirm"

[[rules]]
name = "low-risk writes"
actions = ["ticket.update", "ticket.comment", "note.add", "tag.add"]
tier = "logged"
review_sample = 0.2       # one in five reviewed after the fact
"#;

const MATURE: &str = r#"# Countersign policy: mature operation (graduation path step 3 of 4).
#
# Only irreversible and high-value actions wait for a person; everything else runs at
# once, logged and sampled, and any request the agent is unsure about (confidence under
# 0.8) is escalated to a person whatever its rule.
#
# Next step (optimized, step 4): let the data set the triggers. Run
# `countersign policy suggest policy.toml` regularly: it proposes relaxing each rule and
# action type whose error rate's 95% upper bound is under 5% over at least 50 decisions in
# 30 days, narrowing where errors cluster on an argument, and tightening any logged rule
# whose post-hoc flags run too high, each with its evidence and the replay of the change
# over the history.
version = 1

[defaults]
tier = "approve"          # actions nobody has thought of yet still go to a person
min_confidence = 0.8      # unsure requests go to a person, whatever their rule
sla = "30m"
on_timeout = "reject"

[[rules]]
name = "reads"
actions = ["*.get", "*.list", "*.search", "*.read", "*.describe"]
tier = "auto"

[[rules]]
name = "irreversible"
actions = ["*.delete", "account.close", "*.destroy"]
tier = "confirm"

[[rules]]
name = "high-value refunds"
actions = ["refund.create"]
when = "args.amount > 100"    # a missing or non-numeric amount fails closed: approve
tier = "approve"

[[rules]]
name = "external mail"
actions = ["email.send"]
tier = "approve"

[[rules]]
name = "routine writes"
actions = ["refund.create", "ticket.*", "note.*", "tag.*", "email.reply"]
tier = "logged"
review_sample = 0.1
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_loads() {
        for stage in STAGES {
            let checked = crate::policy::check(stage.policy);
            assert!(
                checked.policy.is_some(),
                "{}: {:?}",
                stage.name,
                checked.diagnostics
            );
            assert!(
                checked.diagnostics.is_empty(),
                "{}: {:?}",
                stage.name,
                checked.diagnostics
            );
        }
    }
}
