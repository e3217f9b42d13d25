-- The collections domain: creditors entrust portfolios of cases; a case belongs to a
-- debtor, holds debts, promises and payments, and has one activity stream.

CREATE TABLE creditors (
    id          bigserial PRIMARY KEY,
    code        text NOT NULL UNIQUE,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE portfolios (
    id           bigserial PRIMARY KEY,
    creditor_id  bigint NOT NULL REFERENCES creditors(id),
    code         text NOT NULL,
    name         text NOT NULL,
    received_on  date,
    workflow     text NOT NULL DEFAULT 'default',
    active       boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (creditor_id, code)
);

CREATE TABLE debtors (
    id            bigserial PRIMARY KEY,
    kind          text NOT NULL DEFAULT 'person' CHECK (kind IN ('person', 'company')),
    first_name    text,
    last_name     text,
    company_name  text,
    tax_code      text,
    birth_date    date,
    language      text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (kind = 'company' AND company_name IS NOT NULL
           OR kind = 'person' AND last_name IS NOT NULL)
);
CREATE INDEX debtors_tax_code_idx ON debtors (tax_code) WHERE tax_code IS NOT NULL;
-- "Debtor's birthday today" filters by month and day.
CREATE INDEX debtors_birthday_idx ON debtors ((extract(month FROM birth_date)), (extract(day FROM birth_date)))
    WHERE birth_date IS NOT NULL;

CREATE TABLE phones (
    id               bigserial PRIMARY KEY,
    debtor_id        bigint NOT NULL REFERENCES debtors(id) ON DELETE CASCADE,
    e164             text NOT NULL CHECK (e164 ~ '^\+[1-9][0-9]{6,14}$'),
    kind             text NOT NULL DEFAULT 'unknown'
                     CHECK (kind IN ('mobile', 'landline', 'work', 'voip', 'other', 'unknown')),
    source           text NOT NULL DEFAULT 'creditor',
    consent          text NOT NULL DEFAULT 'unknown' CHECK (consent IN ('unknown', 'granted', 'revoked')),
    do_not_call      boolean NOT NULL DEFAULT false,
    time_zones       text[] NOT NULL DEFAULT '{}',
    active           boolean NOT NULL DEFAULT true,
    position         integer NOT NULL DEFAULT 0,  -- dialing order among the debtor's phones
    last_outcome     text,
    last_outcome_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (debtor_id, e164)
);
CREATE INDEX phones_e164_idx ON phones (e164);

CREATE TABLE emails (
    id          bigserial PRIMARY KEY,
    debtor_id   bigint NOT NULL REFERENCES debtors(id) ON DELETE CASCADE,
    address     text NOT NULL CHECK (position('@' IN address) > 1),
    consent     text NOT NULL DEFAULT 'unknown' CHECK (consent IN ('unknown', 'granted', 'revoked')),
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX emails_debtor_address_idx ON emails (debtor_id, lower(address));
CREATE INDEX emails_address_idx ON emails (lower(address));

CREATE TABLE addresses (
    id           bigserial PRIMARY KEY,
    debtor_id    bigint NOT NULL REFERENCES debtors(id) ON DELETE CASCADE,
    kind         text NOT NULL DEFAULT 'residence',
    line1        text NOT NULL,
    line2        text,
    postal_code  text,
    city         text,
    region       text,
    country      char(2),
    time_zone    text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX addresses_debtor_idx ON addresses (debtor_id);

CREATE TABLE cases (
    id                 bigserial PRIMARY KEY,
    creditor_id        bigint NOT NULL REFERENCES creditors(id),
    portfolio_id       bigint NOT NULL REFERENCES portfolios(id),
    debtor_id          bigint NOT NULL REFERENCES debtors(id),
    reference          text NOT NULL,  -- the creditor's own case reference
    status             text NOT NULL DEFAULT 'new',
    status_changed_at  timestamptz NOT NULL DEFAULT now(),
    assigned_agent_id  bigint REFERENCES users(id),
    team_id            bigint REFERENCES teams(id),
    sentiment          text,
    currency           char(3) NOT NULL DEFAULT 'EUR',
    total_due          numeric(14, 2) NOT NULL DEFAULT 0,
    total_paid         numeric(14, 2) NOT NULL DEFAULT 0,
    balance            numeric(14, 2) GENERATED ALWAYS AS (total_due - total_paid) STORED,
    last_contact_at    timestamptz,
    next_action_at     timestamptz,
    opened_at          timestamptz NOT NULL DEFAULT now(),
    closed_at          timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (creditor_id, reference)
);
CREATE INDEX cases_portfolio_status_idx ON cases (portfolio_id, status);
CREATE INDEX cases_debtor_idx ON cases (debtor_id);
CREATE INDEX cases_agent_idx ON cases (assigned_agent_id) WHERE assigned_agent_id IS NOT NULL;
CREATE INDEX cases_balance_idx ON cases (balance);

-- Linked persons: guarantors, co-obligors, heirs, legal representatives.
CREATE TABLE debtor_links (
    id                bigserial PRIMARY KEY,
    case_id           bigint NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    debtor_id         bigint NOT NULL REFERENCES debtors(id),
    relation          text NOT NULL CHECK (relation IN ('guarantor', 'co_obligor', 'heir', 'legal_representative', 'other')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (case_id, debtor_id, relation)
);

CREATE TABLE debts (
    id           bigserial PRIMARY KEY,
    case_id      bigint NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    reference    text,
    description  text,
    capital      numeric(14, 2) NOT NULL DEFAULT 0,
    interest     numeric(14, 2) NOT NULL DEFAULT 0,
    fees         numeric(14, 2) NOT NULL DEFAULT 0,
    costs        numeric(14, 2) NOT NULL DEFAULT 0,
    total        numeric(14, 2) GENERATED ALWAYS AS (capital + interest + fees + costs) STORED,
    due_date     date,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX debts_case_idx ON debts (case_id);

CREATE TABLE promises (
    id          bigserial PRIMARY KEY,
    case_id     bigint NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    amount      numeric(14, 2) NOT NULL CHECK (amount > 0),
    due_date    date NOT NULL,
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'kept', 'broken', 'cancelled')),
    created_by  bigint REFERENCES users(id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    settled_at  timestamptz
);
CREATE INDEX promises_case_idx ON promises (case_id);
CREATE INDEX promises_pending_due_idx ON promises (due_date) WHERE status = 'pending';

CREATE TABLE payments (
    id           bigserial PRIMARY KEY,
    case_id      bigint NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    amount       numeric(14, 2) NOT NULL CHECK (amount <> 0),
    paid_on      date NOT NULL,
    method       text,
    external_id  text UNIQUE,  -- the creditor's or bank's id, so a re-sent payment counts once
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_case_idx ON payments (case_id);

-- The activity stream: one ordered timeline per case.
CREATE TABLE activities (
    id               bigserial PRIMARY KEY,
    case_id          bigint NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    kind             text NOT NULL CHECK (kind IN ('call', 'sms', 'whatsapp', 'email', 'chat', 'note',
                                                   'status_change', 'promise', 'payment', 'system')),
    channel          text NOT NULL CHECK (channel IN ('voice', 'sms', 'whatsapp', 'email', 'chat', 'internal')),
    direction        text NOT NULL CHECK (direction IN ('inbound', 'outbound', 'internal')),
    occurred_at      timestamptz NOT NULL,
    agent_id         bigint REFERENCES users(id),
    summary          text NOT NULL,
    body             text,
    reference        text,  -- e.g. a recording file name or a message's thread id
    delivery_status  text,
    external_id      text,  -- the source system's id; a retried append with it is a no-op
    data             jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX activities_external_idx ON activities (channel, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX activities_timeline_idx ON activities (case_id, occurred_at DESC, id DESC);
