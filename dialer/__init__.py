"""The Asterisk side: AMI connection, call state machines, agents, campaigns, the AMI simulator.

Layers, from the wire up (only `ami_client`/`ami_protocol` import panoramisk):

- `ami_codec`: AMI bytes <-> `AmiMessage` (bounded, incremental); shared with the simulator.
- `ami_events`: typed frozen records for the events the dialer reasons about.
- `call_notices`, `call_state`: the pure per-call state machine and what it reports.
- `call_tracker`: routes events to calls by our ids; reconciliation after a reconnect.
- `ami_api`, `ami_protocol`, `ami_client`: the panoramisk adapter with a typed API.
- `call_control`: dial/connect/abandon/cancel over one connection, one in-order consumer.
- `sim/`: the AMI simulator (`pratica sim-pbx`), following `asterisk_conf/`.
"""
