"""Benchmark: AMI bytes decoded, typed and applied to the call state machines, one core.

Builds a stream from the recorded Asterisk 22 sessions (every call scenario, repeated
with fresh attempt ids so that thousands of calls overlap), then times decoding plus
`CallTracker.feed_message` for every message. Run:
`.venv/bin/python -m bench.ami.parse_apply [--calls N]`.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from dialer.ami_codec import AmiDecoder
from dialer.call_state import CallEnded
from dialer.call_tracker import CallTracker

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "asterisk"
CALL_SCENARIOS = [
    "originate-answer",
    "originate-noanswer",
    "originate-busy",
    "originate-congestion",
    "abandon-redirect",
    "amd",
    "redirect-to-agent-conf",
    "hangup-while-ringing",
]


def scenario_bytes(name: str) -> str:
    out = []
    for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["dir"] == "in" and not row["raw"].startswith("Asterisk Call Manager"):
            out.append(row["raw"])
    return "".join(out)


def build_stream(calls: int) -> bytes:
    templates = [scenario_bytes(name) for name in CALL_SCENARIOS]
    pattern = re.compile(r"(att-|ATTEMPT=)(\d+)")
    parts = []
    for i in range(calls):
        text = templates[i % len(templates)]
        parts.append(pattern.sub(lambda m, i=i: f"{m.group(1)}{i}x{m.group(2)}", text))
    return "".join(parts).encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--chunk", type=int, default=65536)
    args = parser.parse_args()
    stream = build_stream(args.calls)
    best = None
    for _ in range(3):
        decoder = AmiDecoder()
        tracker = CallTracker()
        messages = 0
        ended = 0
        start = time.process_time()
        for offset in range(0, len(stream), args.chunk):
            for message in decoder.feed(stream[offset : offset + args.chunk]):
                messages += 1
                for notice in tracker.feed_message(message, 0.0):
                    ended += isinstance(notice, CallEnded)
        elapsed = time.process_time() - start
        if best is None or elapsed < best[0]:
            best = (elapsed, messages, ended)
    assert best is not None
    elapsed, messages, ended = best
    print(
        json.dumps(
            {
                "bytes": len(stream),
                "events": messages,
                "calls_ended": ended,
                "cpu_seconds": round(elapsed, 3),
                "events_per_second": round(messages / elapsed),
            }
        )
    )


if __name__ == "__main__":
    main()
