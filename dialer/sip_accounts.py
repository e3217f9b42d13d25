"""SIP accounts of the agents' browser softphones on Asterisk.

Each agent's SIP password is derived from the server's secret key and the extension, so
Pratica can hand it to the agent's browser after login and generate the matching PJSIP
configuration, without storing SIP passwords anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def sip_password(secret: bytes, extension: str) -> str:
    digest = hmac.new(secret, f"sip:{extension}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest)[:24].decode()


def pjsip_agent_block(secret: bytes, extension: str, display_name: str) -> str:
    """The three PJSIP sections of one agent, using the templates in asterisk_conf/pjsip.conf."""
    safe_name = display_name.replace('"', "'")
    return (
        f"[{extension}](webrtc-agent)\n"
        f"auth = {extension}\n"
        f"aors = {extension}\n"
        f'callerid = "{safe_name}" <{extension}>\n\n'
        f"[{extension}](webrtc-agent-auth)\n"
        f"username = {extension}\n"
        f"password = {sip_password(secret, extension)}\n\n"
        f"[{extension}](webrtc-agent-aor)\n"
    )
