-- Approval metrics (SPEC §6), kept as decisions happen: sums per hour and per day of
-- submission, updated by the writer in the transaction of every change to an action
-- (`countersign_core::stats::change`: what the action adds now minus what it added
-- before). A window's figures are sums of these rows, plus at most half an hour of actions
-- read one by one at each unaligned end, never a scan of the history. Existing actions
-- are summed once when this migration runs.

-- `span_hours` is 1 (a row per hour) or 24 (a row per day, UTC); `start` counts those
-- units since the Unix epoch. `rule` is '' for the policy's [defaults]. The count columns
-- are `countersign_core::stats::Counts::FIELDS`, in that order. `latency` is the review
-- latency histogram (submission to the deciding verdict): per bucket of two significant
-- digits of milliseconds, the bucket (2 bytes, little-endian) and its count (zigzag
-- LEB128).
CREATE TABLE action_stats (
    span_hours    INTEGER NOT NULL,
    start         INTEGER NOT NULL,
    action        TEXT NOT NULL,
    agent         TEXT NOT NULL,
    rule          TEXT NOT NULL,
    tier          TEXT NOT NULL,
    total         INTEGER NOT NULL,
    allowed       INTEGER NOT NULL,
    denied        INTEGER NOT NULL,
    pending       INTEGER NOT NULL,
    approved      INTEGER NOT NULL,
    modified      INTEGER NOT NULL,
    rejected      INTEGER NOT NULL,
    expired       INTEGER NOT NULL,
    cancelled     INTEGER NOT NULL,
    auto_approved INTEGER NOT NULL,
    escalated     INTEGER NOT NULL,
    reminded      INTEGER NOT NULL,
    reviewed      INTEGER NOT NULL,
    flagged       INTEGER NOT NULL,
    granted       INTEGER NOT NULL,
    latency       BLOB NOT NULL,
    PRIMARY KEY (span_hours, start, action, agent, rule, tier)
) WITHOUT ROWID;

-- Each reviewer's verdicts per hour and per day of the actions' submission, by tier and
-- verdict: how many, the post-hoc flags on actions they approved, and the time from
-- submission to the verdict (a histogram as above).
CREATE TABLE reviewer_stats (
    span_hours       INTEGER NOT NULL,
    start            INTEGER NOT NULL,
    reviewer         TEXT NOT NULL,
    tier             TEXT NOT NULL,
    verdict          TEXT NOT NULL,
    decisions        INTEGER NOT NULL,
    flagged          INTEGER NOT NULL,
    time_to_decision BLOB NOT NULL,
    PRIMARY KEY (span_hours, start, reviewer, tier, verdict)
) WITHOUT ROWID;
