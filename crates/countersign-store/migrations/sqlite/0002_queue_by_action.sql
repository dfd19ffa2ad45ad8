-- The pending queue filtered to one action name (`?action=refund.create`): without this, a
-- rare name would make the queue scan every pending action to fill a page.
CREATE INDEX actions_pending_by_action ON actions (action, deadline, id) WHERE status = 'pending';
