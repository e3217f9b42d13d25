-- A callback boosts a lead's priority; the base priority is restored after the attempt.
ALTER TABLE leads ADD COLUMN base_priority numeric(14, 2) NOT NULL DEFAULT 0;
UPDATE leads SET base_priority = priority;

-- The agent's disposition of a connected call, and the promise it recorded.
ALTER TABLE call_attempts ADD COLUMN disposition text;
ALTER TABLE call_attempts ADD COLUMN promise_id bigint REFERENCES promises(id);
