-- Signed checkpoints of the audit chain (C2SP signed notes), and the row health probes
-- write.

-- One row per signed chain head. The signed note is what counts (it is also published
-- outside the database); size and hash are kept beside it to look it up and compare.
CREATE TABLE checkpoints (
    size      INTEGER PRIMARY KEY NOT NULL,
    hash      BLOB NOT NULL,
    note      TEXT NOT NULL,
    signed_at INTEGER NOT NULL
);
CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN
    SELECT RAISE(ABORT, 'checkpoints are append-only');
END;
CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN
    SELECT RAISE(ABORT, 'checkpoints are append-only');
END;

-- No index of the log by action: verification sorts (action id, seq) pairs when it runs,
-- which costs it nothing measurable, where an index cost every write ~15% (BENCHMARKS.md).

-- The row a health probe rewrites: a real committed write, so that a read-only file or a
-- failing device shows even while no request writes.
CREATE TABLE write_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
);
