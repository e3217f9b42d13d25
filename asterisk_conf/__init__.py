"""The Asterisk configuration the dialer expects; files here are installed into /etc/asterisk."""
