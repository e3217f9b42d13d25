-- Leads of a case that must not be contacted stop: state 'cancelled', with the reason and
-- the moment. A lead being dialed keeps its call; the reason set on it keeps the call's
-- end (finish_attempt, release_claims, skip_lead) from queueing it again.
ALTER TABLE leads DROP CONSTRAINT leads_state_check;
ALTER TABLE leads ADD CONSTRAINT leads_state_check
    CHECK (state IN ('scheduled', 'ready', 'dialing', 'done', 'exhausted', 'cancelled'));
ALTER TABLE leads ADD COLUMN cancel_reason text;
ALTER TABLE leads ADD COLUMN cancelled_at timestamptz;
-- A case's leads in every campaign (a status change, a phone's flags, a campaign load).
CREATE INDEX leads_case_idx ON leads (case_id);

-- When a case stops being contactable (core's cases.contactable, kept by the workflow's
-- status change in its transaction), its queued leads and callbacks (callbacks are
-- leads) in every campaign are cancelled in that same transaction, and audited. A trigger
-- rather than a call from the workflow: the dialer owns the leads, and the workflow
-- (crm_bridge) must not depend on the dialer; every way a case becomes no-contact
-- (a status change, a workflow whose statuses change meaning, the CRM bridge) is covered.
-- The status change's own audit entry, in the same transaction, names who made it.
CREATE FUNCTION cancel_leads_of_uncontactable_case() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    reason text := 'case status ' || NEW.status;
    at timestamptz := CASE WHEN NEW.status IS DISTINCT FROM OLD.status
                           THEN NEW.status_changed_at ELSE now() END;
    cancelled bigint[];
BEGIN
    WITH stopped AS (
        UPDATE leads
        SET state = CASE WHEN state = 'dialing' THEN 'dialing' ELSE 'cancelled' END,
            cancel_reason = reason,
            cancelled_at = at
        WHERE case_id = NEW.id AND state IN ('scheduled', 'ready', 'dialing')
        RETURNING id
    )
    SELECT array_agg(id ORDER BY id) INTO cancelled FROM stopped;
    IF cancelled IS NOT NULL THEN
        INSERT INTO audit_log (actor, action, entity, entity_id, after)
        VALUES ('dialer', 'lead.cancel', 'case', NEW.id::text,
                jsonb_build_object('lead_ids', to_jsonb(cancelled), 'reason', reason));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER cases_no_contact_stops_leads
    AFTER UPDATE OF contactable ON cases
    FOR EACH ROW WHEN (OLD.contactable AND NOT NEW.contactable)
    EXECUTE FUNCTION cancel_leads_of_uncontactable_case();
