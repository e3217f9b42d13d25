-- Callbacks agreed with a debtor in a disposition, whatever the call was (campaign, manual,
-- preview, inbound). Personal ones (agent_id set, no lead) are offered to that agent at the
-- time; the others are carried by a lead of a campaign (lead_id). While one is pending,
-- campaign claims skip the case's other leads unless the agent allowed campaigns to call.
CREATE TABLE callbacks (
    id                  bigserial PRIMARY KEY,
    case_id             bigint NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    due_at              timestamptz NOT NULL,
    agent_id            bigint REFERENCES users(id),
    campaign_id         bigint REFERENCES campaigns(id) ON DELETE SET NULL,
    lead_id             bigint REFERENCES leads(id) ON DELETE SET NULL,
    campaigns_may_call  boolean NOT NULL DEFAULT false,
    state               text NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('pending', 'done', 'cancelled')),
    attempt_key         text,            -- the call whose disposition set it
    created_at          timestamptz NOT NULL,
    announced_at        timestamptz,     -- when it popped on the agent's screen
    closed_at           timestamptz,
    closed_by           text             -- the call that reached the debtor
);
CREATE INDEX callbacks_pending_case_idx ON callbacks (case_id) WHERE state = 'pending';
CREATE INDEX callbacks_agent_idx ON callbacks (agent_id, due_at) WHERE state = 'pending';
CREATE INDEX callbacks_unannounced_idx ON callbacks (due_at)
    WHERE state = 'pending' AND announced_at IS NULL AND agent_id IS NOT NULL AND lead_id IS NULL;
