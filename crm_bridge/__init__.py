"""Case data and statuses: the built-in case store, workflow, import/export, CRM adapters."""
