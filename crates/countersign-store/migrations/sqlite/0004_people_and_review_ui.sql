-- People who sign in to the reviewer web UI, their sessions, and the indexes the UI's queue
-- needs to stay fast at 100,000 pending actions.

-- One row per person with a web login. `name` is the folded identity (`core::name::Name`),
-- the same name the person's reviewer and admin tokens carry: one identity, one set of
-- groups. `password` is an Argon2id PHC string; the password itself is never stored.
CREATE TABLE users (
    name                TEXT PRIMARY KEY NOT NULL,
    groups              TEXT NOT NULL,
    admin               INTEGER NOT NULL,
    password            TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    password_changed_at INTEGER NOT NULL,
    disabled_at         INTEGER
) WITHOUT ROWID;

-- Web sessions. Only the SHA-256 of the cookie's secret is stored. A session ends (is
-- revoked) on sign-out, on a password change and when its person is disabled; idle and
-- absolute expiry are judged from its times by the server.
CREATE TABLE sessions (
    id               TEXT PRIMARY KEY NOT NULL,
    secret_hash      BLOB NOT NULL UNIQUE,
    name             TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    last_seen_at     INTEGER NOT NULL,
    -- The last time the person typed their password in this session: sign-in, or the
    -- re-authentication an irreversible (`confirm`) approval asks for.
    authenticated_at INTEGER NOT NULL,
    ended_at         INTEGER
);
CREATE INDEX sessions_live_by_name ON sessions (name) WHERE ended_at IS NULL;

-- The queue filtered by tier (and the counts per tier, answered from this index alone)
-- and by agent: without them a rare tier or agent makes the queue scan every pending
-- action to fill a page, as `actions_pending_by_action` avoids for action names.
CREATE INDEX actions_pending_by_tier ON actions (tier, deadline, id) WHERE status = 'pending';
CREATE INDEX actions_pending_by_agent ON actions (agent, deadline, id) WHERE status = 'pending';
-- "What differs from the last approved one": the newest approved action of an agent and
-- action name, without walking the agent's whole history.
CREATE INDEX actions_approved ON actions (agent, action, id) WHERE status = 'approved';
