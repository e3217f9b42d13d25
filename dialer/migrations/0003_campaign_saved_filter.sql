-- A campaign may also select its cases by a saved case filter (crm_bridge's saved_filters):
-- the filter is evaluated when the campaign's leads are loaded.
ALTER TABLE campaigns ADD COLUMN saved_filter_id bigint REFERENCES saved_filters(id) ON DELETE SET NULL;
