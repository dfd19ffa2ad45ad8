-- Grants: what a reviewer let an agent do without asking, until when, how many times; the
-- action a grant let run names it.
CREATE TABLE grants (
    id                TEXT COLLATE "C" PRIMARY KEY,
    agent             TEXT COLLATE "C" NOT NULL,
    actions           TEXT NOT NULL,
    condition         TEXT,
    expires_at        BIGINT NOT NULL,
    max_uses          BIGINT,
    uses              BIGINT NOT NULL DEFAULT 0,
    granted_by        TEXT NOT NULL,
    granted_by_groups TEXT NOT NULL,
    granted_by_admin  BOOLEAN NOT NULL,
    reason            TEXT,
    created_at        BIGINT NOT NULL,
    revoked_at        BIGINT,
    revoked_by        TEXT,
    CHECK (max_uses IS NULL OR uses <= max_uses)
);
CREATE INDEX grants_live ON grants (agent, expires_at) WHERE revoked_at IS NULL;

ALTER TABLE actions ADD COLUMN grant_id TEXT;
