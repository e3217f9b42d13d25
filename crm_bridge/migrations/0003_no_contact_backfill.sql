-- Back-fill cases.contactable (core 0005) from each portfolio's workflow, by the rules of
-- crm_bridge.workflow: a status is no-contact when it is final or marked "no_contact";
-- in the built-in default workflow those are paid, closed and withdrawn. A stored
-- definition (custom, or a saved copy of the default) decides by its own flags.
UPDATE cases c SET contactable = false
FROM portfolios p
LEFT JOIN workflows w ON w.name = p.workflow
WHERE p.id = c.portfolio_id
  AND CASE
        WHEN w.definition IS NOT NULL THEN EXISTS (
            SELECT 1 FROM jsonb_array_elements(w.definition -> 'statuses') s
            WHERE s ->> 'code' = c.status
              AND (COALESCE((s ->> 'final')::boolean, false)
                   OR COALESCE((s ->> 'no_contact')::boolean, false)))
        WHEN p.workflow = 'default' THEN c.status IN ('paid', 'closed', 'withdrawn')
        ELSE false
      END;
