-- Approval metrics (SPEC §6), kept as decisions happen: the PostgreSQL twin of SQLite's
-- 0007_approval_metrics. Sums per hour and per day of submission, updated in the
-- transaction of every change to an action (`countersign_core::stats::change`: what the
-- action adds now minus what it added before). Existing actions are summed once when this
-- migration runs (in Rust, after this file, in the same transaction).
--
-- `shard` spreads the sums of one group over a few rows: a submission adds to its group's
-- row in its own one-statement transaction and holds that row's lock until its commit, so
-- with one row per group, concurrent submissions of one kind would queue behind each
-- other's WAL flush. Each connection writes the shard of its backend process id; readers
-- add the shards up.
--
-- `span_hours` is 1 (a row per hour) or 24 (a row per day, UTC); `start` counts those
-- units since the Unix epoch. `rule` is '' for the policy's [defaults]. The count columns
-- are `countersign_core::stats::Counts::FIELDS`, in that order. `latency` is the review
-- latency histogram (submission to the deciding verdict), encoded as SQLite's: per bucket
-- of two significant digits of milliseconds, the bucket (2 bytes, little-endian) and its
-- count (zigzag LEB128); merged in the writer under the row's lock.
CREATE TABLE action_stats (
    span_hours    INTEGER NOT NULL,
    start         BIGINT NOT NULL,
    action        TEXT COLLATE "C" NOT NULL,
    agent         TEXT COLLATE "C" NOT NULL,
    rule          TEXT COLLATE "C" NOT NULL,
    tier          TEXT COLLATE "C" NOT NULL,
    shard         SMALLINT NOT NULL,
    total         BIGINT NOT NULL,
    allowed       BIGINT NOT NULL,
    denied        BIGINT NOT NULL,
    pending       BIGINT NOT NULL,
    approved      BIGINT NOT NULL,
    modified      BIGINT NOT NULL,
    rejected      BIGINT NOT NULL,
    expired       BIGINT NOT NULL,
    cancelled     BIGINT NOT NULL,
    auto_approved BIGINT NOT NULL,
    escalated     BIGINT NOT NULL,
    reminded      BIGINT NOT NULL,
    reviewed      BIGINT NOT NULL,
    flagged       BIGINT NOT NULL,
    granted       BIGINT NOT NULL,
    latency       BYTEA NOT NULL,
    PRIMARY KEY (span_hours, start, action, agent, rule, tier, shard)
);

-- Each reviewer's verdicts per hour and per day of the actions' submission, by tier and
-- verdict: how many, the post-hoc flags on actions they approved, and the time from
-- submission to the verdict (a histogram as above). Decisions are a person's pace, so no
-- shards.
CREATE TABLE reviewer_stats (
    span_hours       INTEGER NOT NULL,
    start            BIGINT NOT NULL,
    reviewer         TEXT COLLATE "C" NOT NULL,
    tier             TEXT COLLATE "C" NOT NULL,
    verdict          TEXT COLLATE "C" NOT NULL,
    decisions        BIGINT NOT NULL,
    flagged          BIGINT NOT NULL,
    time_to_decision BYTEA NOT NULL,
    PRIMARY KEY (span_hours, start, reviewer, tier, verdict)
);

