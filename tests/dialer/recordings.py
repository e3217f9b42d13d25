"""Loads the recorded Asterisk 22 AMI sessions in tests/fixtures/asterisk."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dialer.ami_codec import AmiDecoder, AmiMessage

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "asterisk"
SCENARIOS = sorted(p.stem for p in FIXTURES.glob("*.jsonl"))


@dataclass(frozen=True)
class Recorded:
    t: float
    direction: str  # "in" (from Asterisk) or "out" (from the client)
    message: AmiMessage


def load(name: str) -> list[Recorded]:
    """Every message of a recording, decoded with our codec, in wire order."""
    inbound = AmiDecoder(expect_banner=True)
    outbound = AmiDecoder()
    out: list[Recorded] = []
    for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines():
        row = json.loads(line)
        decoder = inbound if row["dir"] == "in" else outbound
        for message in decoder.feed(row["raw"].encode()):
            out.append(Recorded(row["t"], row["dir"], message))
    return out


def inbound(name: str) -> list[Recorded]:
    return [r for r in load(name) if r.direction == "in"]
