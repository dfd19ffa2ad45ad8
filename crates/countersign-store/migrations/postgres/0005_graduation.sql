-- Earned autonomy on PostgreSQL (SQLite's version 8): the evidence per rule and action read
-- from one index, the policies the servers loaded, and the regressions of graduated rules
-- that reviewers were told of. Depends on version 1 only.

-- Whether a reviewer changed the arguments, as a column an index can hold (an index-only
-- scan cannot compute `original_args IS NOT NULL` from an expression index, and holding
-- the arguments themselves would bloat it).
ALTER TABLE actions ADD COLUMN modified BOOLEAN
    GENERATED ALWAYS AS (original_args IS NOT NULL) STORED;

-- Graduation's evidence (`GROUP BY rule, action, tier, status` over a window of
-- submissions) is answered from this index alone, with an index-only scan: it holds every
-- column the aggregate reads. Keyed by rule and action, so that one group's narrowing
-- reads (`corrected_args`, `evidence_below`) are a range of it.
CREATE INDEX actions_history ON actions (rule, action, created_at)
    INCLUDE (tier, status, decided_at, modified);

-- Every policy a server put in force, with its text; `audit_id` is its `policy_loaded`
-- entry (the entry's row: its `seq` is given by the linker after the commit).
CREATE TABLE policy_loads (
    seq        BIGSERIAL PRIMARY KEY,
    hash       TEXT NOT NULL,
    path       TEXT,
    source     TEXT NOT NULL,
    loaded_at  BIGINT NOT NULL,
    audit_id   BIGINT NOT NULL
);

-- Regressions of graduated rules reviewers were told of (`graduation_regressed`), one live
-- row per rule, action and policy: announced once, across every instance (the writers
-- take an advisory lock; the unique index is the backstop), and again only after it
-- cleared.
CREATE TABLE graduation_alerts (
    id          BIGSERIAL PRIMARY KEY,
    rule        TEXT NOT NULL,
    action      TEXT COLLATE "C" NOT NULL,
    policy_hash TEXT NOT NULL,
    fired_at    BIGINT NOT NULL,
    audit_id    BIGINT NOT NULL,
    body        TEXT NOT NULL,
    cleared_at  BIGINT
);
CREATE UNIQUE INDEX graduation_alerts_live ON graduation_alerts (rule, action, policy_hash)
    WHERE cleared_at IS NULL;
