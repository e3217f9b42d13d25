-- Case status workflows (per portfolio, by name) and saved case filters.

CREATE TABLE workflows (
    name        text PRIMARY KEY,
    definition  jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE saved_filters (
    id          bigserial PRIMARY KEY,
    owner_id    bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name        text NOT NULL,
    shared      boolean NOT NULL DEFAULT false,
    definition  jsonb NOT NULL,  -- validated predicates, never SQL
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (owner_id, name)
);
