"""The Asterisk side: AMI connection, call state machines, agents, campaigns, the AMI simulator."""
