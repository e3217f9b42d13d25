"""Core: settings, database, event bus, domain records, activity stream, audit log."""
