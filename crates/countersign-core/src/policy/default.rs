//! The policy used when none is configured (SPEC section 4): reads are automatic,
//! everything else needs a person.

/// The built-in default policy, as a policy file.
pub const DEFAULT_POLICY: &str = r#"# Countersign's built-in default policy.
version = 1

[defaults]
tier = "approve"
sla = "30m"
on_timeout = "reject"

[[rules]]
name = "reads"
description = "Read-only verbs: get, list, search, read, describe (alone, or as the last segment)."
actions = [
    "get", "list", "search", "read", "describe",
    "*.get", "*.list", "*.search", "*.read", "*.describe",
]
tier = "auto"
"#;
