"""SMS, WhatsApp, email and web chat adapters feeding the activity stream."""
