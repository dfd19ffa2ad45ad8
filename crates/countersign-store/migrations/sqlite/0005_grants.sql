-- Grants: time-boxed, bounded autonomy a reviewer gives an agent (`core::grant`). A grant's
-- uses are counted here, inside the writer's transaction that allows the action it covers,
-- so N uses are N uses under any concurrency.
CREATE TABLE grants (
    id                TEXT PRIMARY KEY NOT NULL,
    agent             TEXT NOT NULL,
    actions           TEXT NOT NULL,
    -- A CEL condition on the request, or NULL.
    condition         TEXT,
    expires_at        INTEGER NOT NULL,
    -- NULL: as many uses as the time allows.
    max_uses          INTEGER,
    uses              INTEGER NOT NULL,
    -- Who gave it, with the groups and role they had then: a grant never outlives what its
    -- giver could approve at the time.
    granted_by        TEXT NOT NULL,
    granted_by_groups TEXT NOT NULL,
    granted_by_admin  INTEGER NOT NULL,
    reason            TEXT,
    created_at        INTEGER NOT NULL,
    revoked_at        INTEGER,
    revoked_by        TEXT
) WITHOUT ROWID;

-- The live grants of an agent, looked up on every submission a server could not answer
-- from its own memory, and at start.
CREATE INDEX grants_live ON grants (agent, expires_at) WHERE revoked_at IS NULL;

-- The grant that let an action run without asking, if any.
ALTER TABLE actions ADD COLUMN grant_id TEXT;
