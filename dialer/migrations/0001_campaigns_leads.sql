-- Campaigns, their leads (one per case), and the attempt ledger.

CREATE TABLE campaigns (
    id                    bigserial PRIMARY KEY,
    name                  text NOT NULL UNIQUE,
    -- Which cases the campaign works: any of these portfolios (empty: all), this creditor
    -- (null: all), these case statuses (empty: every status that is not closed).
    portfolio_ids         bigint[] NOT NULL DEFAULT '{}',
    creditor_id           bigint REFERENCES creditors(id),
    statuses              text[] NOT NULL DEFAULT '{}',
    mode                  text NOT NULL DEFAULT 'progressive'
                          CHECK (mode IN ('preview', 'progressive', 'power', 'predictive')),
    pacing                jsonb NOT NULL DEFAULT '{}',
    compliance_profile    text NOT NULL DEFAULT 'IT' CHECK (compliance_profile IN ('US', 'UK', 'IT')),
    window_start          time NOT NULL DEFAULT '09:00',
    window_end            time NOT NULL DEFAULT '20:00',
    days_of_week          integer[] NOT NULL DEFAULT '{1,2,3,4,5,6}',
    holidays              date[] NOT NULL DEFAULT '{}',
    caller_id             text,
    amd                   boolean NOT NULL DEFAULT true,
    max_attempts_per_day  integer NOT NULL DEFAULT 3 CHECK (max_attempts_per_day > 0),
    max_attempts_total    integer NOT NULL DEFAULT 10 CHECK (max_attempts_total > 0),
    -- Seconds before the next attempt, by outcome.
    retry_delays          jsonb NOT NULL DEFAULT '{}',
    priority_rule         text NOT NULL DEFAULT 'balance'
                          CHECK (priority_rule IN ('balance', 'promise_due', 'oldest')),
    no_answer_timeout     integer NOT NULL DEFAULT 25 CHECK (no_answer_timeout BETWEEN 5 AND 120),
    active                boolean NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- Distinct sets of time zones; a lead points at the set of the phone it will dial next,
-- so the claim can test "window open in all zones" with one array parameter.
CREATE TABLE zone_sets (
    id     serial PRIMARY KEY,
    zones  text[] NOT NULL UNIQUE
);

CREATE TABLE leads (
    id                 bigserial PRIMARY KEY,
    campaign_id        bigint NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    case_id            bigint NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    debtor_id          bigint NOT NULL REFERENCES debtors(id),
    phone_id           bigint REFERENCES phones(id),
    zone_set_id        integer NOT NULL REFERENCES zone_sets(id),
    -- scheduled: waiting for next_attempt_at; ready: due now (the claim only looks here);
    -- dialing: claimed by a dialer; done / exhausted: finished.
    state              text NOT NULL DEFAULT 'ready'
                       CHECK (state IN ('scheduled', 'ready', 'dialing', 'done', 'exhausted')),
    priority           numeric(14, 2) NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz NOT NULL,
    attempts_total     integer NOT NULL DEFAULT 0,
    attempts_today     integer NOT NULL DEFAULT 0,
    attempts_day       date,
    last_outcome       text,
    last_attempt_at    timestamptz,
    callback_agent_id  bigint REFERENCES users(id),
    claimed_by         text,
    claimed_at         timestamptz,
    UNIQUE (campaign_id, case_id)
);
-- The claim walks this index: only due leads, per zone set, best priority first. Leads waiting for a
-- retry sit in the second one until `promote_due` moves them to ready, so the claim never
-- wades through leads that are not due.
CREATE INDEX leads_claim_idx ON leads (campaign_id, zone_set_id, priority DESC, next_attempt_at)
    WHERE state = 'ready';
CREATE INDEX leads_schedule_idx ON leads (campaign_id, next_attempt_at) WHERE state = 'scheduled';
-- Leads change state all day long: vacuum early so the claim index stays free of dead entries.
ALTER TABLE leads SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
                       fillfactor = 90);
CREATE INDEX leads_dialing_idx ON leads (campaign_id, claimed_by) WHERE state = 'dialing';

-- Every attempt with its timings, so the abandon figures can be recomputed for a regulator.
CREATE TABLE call_attempts (
    id             bigserial PRIMARY KEY,
    attempt_key    text NOT NULL UNIQUE,  -- the ATTEMPT channel variable
    campaign_id    bigint REFERENCES campaigns(id),
    lead_id        bigint REFERENCES leads(id),
    case_id        bigint REFERENCES cases(id),
    debtor_id      bigint REFERENCES debtors(id),
    phone_id       bigint REFERENCES phones(id),
    e164           text NOT NULL,
    direction      text NOT NULL DEFAULT 'outbound' CHECK (direction IN ('outbound', 'inbound')),
    started_at     timestamptz NOT NULL,
    answered_at    timestamptz,
    amd_at         timestamptz,
    amd_result     text,
    connected_at   timestamptz,
    agent_id       bigint REFERENCES users(id),
    abandoned_at   timestamptz,
    ended_at       timestamptz,
    outcome        text,
    hangup_cause   integer,
    recording      text
);
CREATE INDEX call_attempts_debtor_idx ON call_attempts (debtor_id, started_at);
CREATE INDEX call_attempts_campaign_idx ON call_attempts (campaign_id, started_at);
CREATE INDEX call_attempts_open_idx ON call_attempts (campaign_id) WHERE ended_at IS NULL;

-- Zone arrays compare by value, so they are kept in one canonical (sorted) order.
CREATE FUNCTION sorted_zones(text[]) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT COALESCE(array_agg(z ORDER BY z), '{}') FROM unnest($1) AS z $$;

-- Agent state changes, for time-in-state reports and rebuilding live counters.
CREATE TABLE agent_state_log (
    id            bigserial PRIMARY KEY,
    agent_id      bigint NOT NULL REFERENCES users(id),
    state         text NOT NULL,
    pause_reason  text,
    at            timestamptz NOT NULL,
    case_id       bigint REFERENCES cases(id)
);
CREATE INDEX agent_state_log_agent_idx ON agent_state_log (agent_id, at);
