-- Countersign's SQLite schema, version 1.
-- Ids are TEXT (time-ordered), times INTEGER unix milliseconds, JSON TEXT.

CREATE TABLE actions (
    id                 TEXT PRIMARY KEY NOT NULL,
    action             TEXT NOT NULL,
    agent              TEXT NOT NULL,
    owner              TEXT,
    status             TEXT NOT NULL,
    tier               TEXT NOT NULL,
    rule               TEXT,
    reason             TEXT NOT NULL,
    args               TEXT NOT NULL,
    original_args      TEXT,
    reasoning          TEXT,
    context            TEXT NOT NULL,
    confidence         REAL,
    hints              TEXT NOT NULL,
    idempotency_key    TEXT,
    approvers          TEXT NOT NULL,
    escalated_to       TEXT NOT NULL,
    escalated          INTEGER NOT NULL,
    approvals_required INTEGER NOT NULL,
    decisions          TEXT NOT NULL,
    deadline           INTEGER,
    timeout_plan       TEXT,
    policy_hash        TEXT NOT NULL,
    review_sample      REAL NOT NULL,
    -- NULL: not sampled; 'open': waiting for a post-hoc review; 'done': reviewed.
    review_state       TEXT,
    review             TEXT,
    outcome            TEXT,
    created_at         INTEGER NOT NULL,
    decided_at         INTEGER,
    version            INTEGER NOT NULL
);

-- The pending queue and the SLA ladder: oldest deadline first, only pending rows indexed,
-- so a million decided actions cost the queue nothing.
CREATE INDEX actions_pending ON actions (deadline, id) WHERE status = 'pending';
-- An agent's own actions, newest first.
CREATE INDEX actions_by_agent ON actions (agent, id);
-- The post-hoc review queue.
CREATE INDEX actions_reviews ON actions (review_state, id) WHERE review_state IS NOT NULL;

CREATE TABLE idempotency (
    agent      TEXT NOT NULL,
    key        TEXT NOT NULL,
    body_hash  TEXT NOT NULL,
    action_id  TEXT NOT NULL,
    -- What changed between the first answer and now is undone from this (status, deadline,
    -- decided_at as first answered).
    response   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (agent, key)
) WITHOUT ROWID;

CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY NOT NULL,
    at        INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action_id TEXT NOT NULL,
    body      TEXT NOT NULL,
    prev      BLOB NOT NULL,
    hash      BLOB NOT NULL
);

-- Append-only by accident-proofing: the chain makes deliberate edits detectable, these
-- triggers stop careless ones.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    groups      TEXT NOT NULL,
    owner       TEXT,
    secret_hash BLOB NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
