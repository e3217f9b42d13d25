-- Whether a case may be contacted at all: false once its status is one its workflow marks
-- final or "no contact" (paid, closed, withdrawn by the creditor...). The workflow lives in
-- Python, but the dialer's claim is one SQL statement, so the status change keeps this
-- column in step in its own transaction (crm_bridge.workflow.change_status) and the claim
-- joins the case by its primary key. crm_bridge's migration back-fills existing cases.
ALTER TABLE cases ADD COLUMN contactable boolean NOT NULL DEFAULT true;
