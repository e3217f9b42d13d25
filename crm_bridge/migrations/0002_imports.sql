-- Portfolio imports: one row per imported file, and the key that makes re-imports
-- idempotent for debts (a case's debt is identified by its reference).

CREATE TABLE import_batches (
    id             bigserial PRIMARY KEY,
    file_name      text NOT NULL,
    sha256         text NOT NULL,
    rows_total     integer NOT NULL,
    rows_imported  integer NOT NULL,
    rows_rejected  integer NOT NULL,
    cases_created  integer NOT NULL,
    cases_updated  integer NOT NULL,
    actor          text NOT NULL,
    imported_at    timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX debts_case_reference_idx ON debts (case_id, reference) WHERE reference IS NOT NULL;
