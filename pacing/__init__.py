"""Predictive pacing and the call-center simulator used to evaluate it (numpy + stdlib only)."""
