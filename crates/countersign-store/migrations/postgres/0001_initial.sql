-- Countersign's PostgreSQL schema, version 1: the same tables as SQLite's versions 1 to 4,
-- with the same encodings (ids TEXT, times BIGINT unix milliseconds, JSON as TEXT exactly as
-- written, so that the audit bodies and stored rows read the same on both backends), plus
-- what several instances on one database need: a deferred audit chain (entries written in
-- the change's transaction, linked in order by one linker at a time) and a change time per
-- action for listeners that reconnect.

-- Ids, names and action names are COLLATE "C": they compare bytewise, as in SQLite, whatever
-- the database's locale, so orders, cursors and LIKE patterns mean the same on both backends.
CREATE TABLE actions (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    action             TEXT COLLATE "C" NOT NULL,
    agent              TEXT COLLATE "C" NOT NULL,
    owner              TEXT,
    status             TEXT NOT NULL,
    tier               TEXT NOT NULL,
    rule               TEXT,
    reason             TEXT NOT NULL,
    args               TEXT NOT NULL,
    original_args      TEXT,
    reasoning          TEXT,
    context            TEXT NOT NULL,
    confidence         DOUBLE PRECISION,
    hints              TEXT NOT NULL,
    idempotency_key    TEXT,
    approvers          TEXT NOT NULL,
    escalated_to       TEXT NOT NULL,
    escalated          BOOLEAN NOT NULL,
    approvals_required BIGINT NOT NULL,
    decisions          TEXT NOT NULL,
    deadline           BIGINT,
    timeout_plan       TEXT,
    policy_hash        TEXT NOT NULL,
    review_sample      DOUBLE PRECISION NOT NULL,
    -- NULL: not sampled; 'open': waiting for a post-hoc review; 'done': reviewed.
    review_state       TEXT,
    review             TEXT,
    outcome            TEXT,
    created_at         BIGINT NOT NULL,
    decided_at         BIGINT,
    version            BIGINT NOT NULL,
    -- The database's clock when the row last changed: a listener that lost its connection
    -- re-reads the actions changed since it was last known to be listening.
    changed_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The pending queue and the SLA ladder, oldest deadline first, only pending rows indexed.
CREATE INDEX actions_pending ON actions (deadline, id) WHERE status = 'pending';
CREATE INDEX actions_by_agent ON actions (agent, id);
CREATE INDEX actions_reviews ON actions (review_state, id) WHERE review_state IS NOT NULL;
CREATE INDEX actions_pending_by_action ON actions (action, deadline, id) WHERE status = 'pending';
CREATE INDEX actions_pending_by_tier ON actions (tier, deadline, id) WHERE status = 'pending';
CREATE INDEX actions_pending_by_agent ON actions (agent, deadline, id) WHERE status = 'pending';
CREATE INDEX actions_approved ON actions (agent, action, id) WHERE status = 'approved';
CREATE INDEX actions_changed ON actions (changed_at);

-- The first answer under an idempotency key. The primary key is what resolves two
-- concurrent submissions with one key, on any instance: the second insert waits for the
-- first's transaction and then fails, and the second caller is answered with the first.
CREATE TABLE idempotency (
    agent      TEXT NOT NULL,
    key        TEXT NOT NULL,
    body_hash  TEXT NOT NULL,
    action_id  TEXT NOT NULL,
    response   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (agent, key)
);

-- The audit log. An entry is inserted by the transaction of the change it records (`id`
-- in insertion order) with `seq`, `prev` and `hash` NULL; the linker then gives committed
-- entries their place in the chain, in batches, under the lock of `audit_head`. Writers
-- never touch the head, so commits are not serialised behind it (ARCHITECTURE.md).
CREATE TABLE audit (
    id        BIGSERIAL PRIMARY KEY,
    seq       BIGINT UNIQUE,
    at        BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action_id TEXT COLLATE "C" NOT NULL,
    body      TEXT NOT NULL,
    prev      BYTEA,
    hash      BYTEA,
    CHECK ((seq IS NULL) = (hash IS NULL) AND (seq IS NULL) = (prev IS NULL))
);
-- What the linker has still to link.
CREATE INDEX audit_unlinked ON audit (id) WHERE seq IS NULL;

-- The chain's head: the one row the linker locks. Only the linker writes it.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash BYTEA NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000');

-- Append-only by accident-proofing: the chain makes deliberate edits detectable, these
-- triggers stop careless ones. The one update allowed is the linker's, once per entry.
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.seq IS NULL
        AND NEW.id = OLD.id AND NEW.at = OLD.at AND NEW.kind = OLD.kind
        AND NEW.actor = OLD.actor AND NEW.action_id = OLD.action_id AND NEW.body = OLD.body
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();

CREATE TABLE tokens (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL,
    role        TEXT NOT NULL,
    groups      TEXT NOT NULL,
    owner       TEXT,
    secret_hash BYTEA NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE checkpoints (
    size      BIGINT PRIMARY KEY,
    hash      BYTEA NOT NULL,
    note      TEXT NOT NULL,
    signed_at BIGINT NOT NULL
);
CREATE FUNCTION checkpoints_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'checkpoints are append-only';
END;
$$;
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION checkpoints_append_only();

-- The row a health probe rewrites: a real committed write.
CREATE TABLE write_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at BIGINT NOT NULL
);

CREATE TABLE users (
    name                TEXT COLLATE "C" PRIMARY KEY,
    groups              TEXT NOT NULL,
    admin               BOOLEAN NOT NULL,
    password            TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    password_changed_at BIGINT NOT NULL,
    disabled_at         BIGINT
);

CREATE TABLE sessions (
    id               TEXT COLLATE "C" PRIMARY KEY,
    secret_hash      BYTEA NOT NULL UNIQUE,
    name             TEXT COLLATE "C" NOT NULL,
    created_at       BIGINT NOT NULL,
    last_seen_at     BIGINT NOT NULL,
    authenticated_at BIGINT NOT NULL,
    ended_at         BIGINT
);
CREATE INDEX sessions_live_by_name ON sessions (name) WHERE ended_at IS NULL;
