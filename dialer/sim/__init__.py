"""An Asterisk stand-in that speaks real AMI over TCP, for tests, demos and load tests."""
