-- A call whose wrap-up ran out (or that the agent left) without a disposition is settled
-- provisionally: its lead is released as contacted, and the disposition stays open for
-- the agent to save later, which then replaces the provisional settlement.
ALTER TABLE call_attempts ADD COLUMN settled_provisionally_at timestamptz;
