-- The SLA ladder's reminders and its scheduler's index; the durable outbox of notifications
-- and agent callbacks; Slack accounts linked to people. The same tables as SQLite's
-- 0006_outbox.sql, plus the delivery lease several instances share the outbox by.

-- The reminders of the current stage not sent yet (a JSON array of unix milliseconds), when
-- the SLA escalated, and the next moment the ladder has something to do: the earlier of the
-- next reminder and the deadline. Sweeps lock due rows `FOR UPDATE SKIP LOCKED`.
ALTER TABLE actions ADD COLUMN reminders TEXT NOT NULL DEFAULT '[]';
ALTER TABLE actions ADD COLUMN escalated_at BIGINT;
ALTER TABLE actions ADD COLUMN next_step_at BIGINT;
-- How many reminders the ladder sent (the approval metrics' `reminded`).
ALTER TABLE actions ADD COLUMN reminded BIGINT NOT NULL DEFAULT 0;
UPDATE actions SET next_step_at = deadline WHERE status = 'pending';
CREATE INDEX actions_next_step ON actions (next_step_at, id) WHERE status = 'pending';

-- Where an agent asked its final status to be POSTed (checked against `callback_allow` at
-- submission). Never changes after submission.
CREATE TABLE callbacks (
    action_id TEXT COLLATE "C" PRIMARY KEY,
    url       TEXT NOT NULL
);

-- One row per event that has somewhere to go, written in the same transaction as the change
-- that caused it. `id` is the stable message id receivers de-duplicate on (`webhook-id`).
CREATE TABLE events (
    seq       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id        TEXT NOT NULL,
    action_id TEXT COLLATE "C" NOT NULL,
    kind      TEXT NOT NULL,
    at        BIGINT NOT NULL,
    body      TEXT NOT NULL
);

-- One row per event and destination; `lane` groups the deliveries that share a receiver.
-- A pending delivery is claimed by the instance that tries it: `next_attempt_at` moves to
-- the end of the claim's lease, so no other instance takes it meanwhile, and a claim whose
-- instance died comes due again when its lease ends.
CREATE TABLE deliveries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event           BIGINT NOT NULL REFERENCES events (seq),
    target          TEXT NOT NULL,
    lane            TEXT COLLATE "C" NOT NULL,
    url             TEXT,
    -- 'pending' (to be tried at next_attempt_at), 'delivered' or 'failed' (tries used up).
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    finished_at     BIGINT
);
CREATE INDEX deliveries_due ON deliveries (lane, next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX deliveries_failed ON deliveries (id) WHERE status = 'failed';

-- Slack accounts linked to people (`countersign user link NAME --slack U0123`).
CREATE TABLE slack_links (
    slack_user TEXT COLLATE "C" PRIMARY KEY,
    name       TEXT NOT NULL,
    linked_at  BIGINT NOT NULL
);
