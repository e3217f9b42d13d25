-- Which dialer node placed (and follows) an attempt: after a crash or restart the node
-- reconciles its own attempts left without an end with what Asterisk still has.
ALTER TABLE call_attempts ADD COLUMN node text;
CREATE INDEX call_attempts_unended_idx ON call_attempts (node) WHERE ended_at IS NULL;

-- When the agent's leg left a connected call (the agent's phone dropped or the agent
-- logged out mid-call): the debtor was left alone from that moment.
ALTER TABLE call_attempts ADD COLUMN agent_left_at timestamptz;
-- How the attempt's end was learnt: 'events' (followed live), 'reconciled' (from what
-- Asterisk still had after a reconnect or restart) or 'recovered' (from the milestones
-- recorded before a crash, the call being gone).
ALTER TABLE call_attempts ADD COLUMN end_source text NOT NULL DEFAULT 'events'
    CHECK (end_source IN ('events', 'reconciled', 'recovered'));

