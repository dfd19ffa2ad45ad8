-- The SLA ladder's reminders and its scheduler's index; the durable outbox of notifications
-- and agent callbacks; Slack accounts linked to people.

-- The reminders of the current stage not sent yet (a JSON array of unix milliseconds), when
-- the SLA escalated, and the next moment the ladder has something to do: the earlier of the
-- next reminder and the deadline. The scheduler sleeps until the smallest `next_step_at`.
ALTER TABLE actions ADD COLUMN reminders TEXT NOT NULL DEFAULT '[]';
ALTER TABLE actions ADD COLUMN escalated_at INTEGER;
ALTER TABLE actions ADD COLUMN next_step_at INTEGER;
-- How many reminders the ladder sent (the approval metrics' `reminded`).
ALTER TABLE actions ADD COLUMN reminded INTEGER NOT NULL DEFAULT 0;
UPDATE actions SET next_step_at = deadline WHERE status = 'pending';
CREATE INDEX actions_next_step ON actions (next_step_at, id) WHERE status = 'pending';

-- Where an agent asked its final status to be POSTed (checked against `callback_allow` at
-- submission). Never changes after submission.
CREATE TABLE callbacks (
    action_id TEXT PRIMARY KEY NOT NULL,
    url       TEXT NOT NULL
) WITHOUT ROWID;

-- One row per event that has somewhere to go, written in the same transaction as the change
-- that caused it. `id` is the stable message id receivers de-duplicate on (`webhook-id`);
-- `body` the JSON payload as rendered when the event happened.
CREATE TABLE events (
    seq       INTEGER PRIMARY KEY NOT NULL,
    id        TEXT NOT NULL,
    action_id TEXT NOT NULL,
    kind      TEXT NOT NULL,
    at        INTEGER NOT NULL,
    body      TEXT NOT NULL
);

-- One row per event and destination. `lane` groups the deliveries that share a receiver
-- (a configured target, or one callback origin): each lane has its own concurrency, so a
-- slow receiver holds up only its own lane.
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY NOT NULL,
    event           INTEGER NOT NULL REFERENCES events (seq),
    target          TEXT NOT NULL,
    lane            TEXT NOT NULL,
    -- Callbacks only: the agent's URL. Targets' URLs come from the configuration.
    url             TEXT,
    -- 'pending' (to be tried at next_attempt_at), 'delivered' or 'failed' (tries used up).
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER
);
CREATE INDEX deliveries_due ON deliveries (lane, next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX deliveries_failed ON deliveries (id) WHERE status = 'failed';

-- Slack accounts linked to people (`countersign user link NAME --slack U0123`): a Slack
-- user's button press acts as this person, with the groups of their live tokens.
CREATE TABLE slack_links (
    slack_user TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    linked_at  INTEGER NOT NULL
) WITHOUT ROWID;
