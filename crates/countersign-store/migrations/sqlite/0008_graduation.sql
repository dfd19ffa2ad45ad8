-- Earned autonomy: the evidence per rule and action read from one index, the policies
-- the server loaded, and the regressions of graduated rules that reviewers were told of.

-- Graduation's evidence (`GROUP BY rule, action, tier, status` over a window of
-- submissions) is answered from this index alone: it holds every column the aggregate
-- reads, in group order, so a million actions are one pass over the index without a sort
-- instead of over the table's rows with their arguments (BENCHMARKS.md). Post-hoc reviews
-- are counted through `actions_reviews`. It is updated when an action is submitted and when
-- its status or arguments change, like the other indexes.
CREATE INDEX actions_history ON actions (
    rule, action, tier, status, created_at, decided_at, (original_args IS NOT NULL)
);

-- Every policy the server put in force, with its text: a changed policy is an audit
-- entry (`policy_loaded`), and this table says which text a hash names.
CREATE TABLE policy_loads (
    seq        INTEGER PRIMARY KEY NOT NULL,
    hash       TEXT NOT NULL,
    path       TEXT,
    source     TEXT NOT NULL,
    loaded_at  INTEGER NOT NULL,
    audit_seq  INTEGER NOT NULL
);

-- Regressions of graduated rules reviewers were told of (`graduation_regressed`), one live
-- row per rule, action and policy: a regression is announced once, and again only after
-- it cleared (the rate recovered, or another policy is in force).
CREATE TABLE graduation_alerts (
    id          INTEGER PRIMARY KEY NOT NULL,
    rule        TEXT NOT NULL,
    action      TEXT NOT NULL,
    policy_hash TEXT NOT NULL,
    fired_at    INTEGER NOT NULL,
    audit_seq   INTEGER NOT NULL,
    body        TEXT NOT NULL,
    cleared_at  INTEGER
);
CREATE UNIQUE INDEX graduation_alerts_live ON graduation_alerts (rule, action, policy_hash)
    WHERE cleared_at IS NULL;
