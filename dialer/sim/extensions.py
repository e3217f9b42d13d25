"""Which extensions, priorities and labels exist: the shipped extensions.conf, parsed.

The simulator runs its contexts as Python scripts (`dialer.sim.dialplan`), but what
Asterisk checks before running anything (Originate's "Extension does not exist.",
"Invalid priority", a Redirect's priority label, `[globals]` read by Getvar) comes
from this table, read from `asterisk_conf/extensions.conf`, plus the lab contexts of
the recorded sessions, which are not shipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources

_EXTEN = re.compile(r"^exten\s*=>\s*([^,]+),\s*([^,(]+)(?:\(([^)]*)\))?\s*,\s*(.*)$")
_SAME = re.compile(r"^same\s*=>\s*([^,(]+)(?:\(([^)]*)\))?\s*,\s*(.*)$")
_APP = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)")


@dataclass
class Extension:
    pattern: str  # "s", "800", or "_X!" style
    apps: list[str] = field(default_factory=list)  # by priority - 1
    labels: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._regex = _pattern(self.pattern[1:]) if self.pattern.startswith("_") else None

    def matches(self, exten: str) -> bool:
        if self._regex is None:
            return exten == self.pattern
        return self._regex.fullmatch(exten) is not None


@dataclass
class ExtensionTable:
    contexts: dict[str, list[Extension]] = field(default_factory=dict)
    globals: dict[str, str] = field(default_factory=dict)

    def find(self, context: str, exten: str) -> Extension | None:
        for extension in self.contexts.get(context, []):
            if extension.matches(exten):
                return extension
        return None

    def exists(self, context: str, exten: str, priority: int = 1) -> bool:
        extension = self.find(context, exten)
        return extension is not None and 1 <= priority <= len(extension.apps)

    def find_label(self, context: str, exten: str, label: str) -> int:
        """The priority of `label` (0: no such label), as ast_findlabel_extension."""
        extension = self.find(context, exten)
        return extension.labels.get(label, 0) if extension is not None else 0

    def applications(self) -> set[str]:
        return {app for exts in self.contexts.values() for e in exts for app in e.apps}


def _pattern(body: str) -> re.Pattern[str]:
    out = []
    chars = iter(body)
    for c in chars:
        if c == "X":
            out.append("[0-9]")
        elif c == "Z":
            out.append("[1-9]")
        elif c == "N":
            out.append("[2-9]")
        elif c == ".":
            out.append(".+")
        elif c == "!":
            out.append(".*")
        elif c == "[":
            group = "".join(iter(lambda: next(chars), "]"))
            out.append(f"[{group}]")
        else:
            out.append(re.escape(c))
    return re.compile("".join(out))


def parse(text: str) -> ExtensionTable:
    table = ExtensionTable()
    context = ""
    current: Extension | None = None
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            context, current = line[1:-1], None
            continue
        if context == "globals":
            name, sep, value = line.partition("=")
            if sep:
                table.globals[name.strip()] = value.strip()
            continue
        exten = _EXTEN.match(line)
        if exten is not None:
            name, priority, label, app = exten.groups()
            current = next((e for e in table.contexts.get(context, []) if e.pattern == name), None)
            if current is None:
                current = Extension(name.strip())
                table.contexts.setdefault(context, []).append(current)
            _add(current, label, app)
            continue
        same = _SAME.match(line)
        if same is not None and current is not None:
            _, label, app = same.groups()
            _add(current, label, app)
    return table


def _add(extension: Extension, label: str | None, app: str) -> None:
    match = _APP.match(app)
    extension.apps.append(match.group(1) if match else app)
    if label:
        extension.labels[label] = len(extension.apps)


# The lab dialplan of the recordings (tests/fixtures/asterisk/README.md), not shipped.
LAB = """
[debtors]
exten => _X!,1,Set(DEBTOR=${EXTEN})
 same => n,Goto(sim-debtor,s,1)
[agents]
exten => _X!,1,NoOp(SIM agent ${EXTEN})
 same => n,Answer()
 same => n,Wait(3600)
[dialer-amd]
exten => _X!,1,AMD()
 same => n,UserEvent(SimAMD,Status: ${AMDSTATUS},Cause: ${AMDCAUSE})
 same => n,GotoIf($["${AMDSTATUS}" = "MACHINE"]?machine)
 same => n,Dial(Local/${EXTEN}@agents,30)
 same => n(machine),Hangup(16)
[lab-hold-for-agent]
exten => s,1,UserEvent(WaitingForAgent,Attempt: ${ATTEMPT})
 same => n,Wait(30)
[lab-abandon]
exten => s,1,Answer()
 same => n,Playback(pratica/abandon-message)
 same => n,Hangup(16)
[lab-agent-conf]
exten => _X!,1,Answer()
 same => n,UserEvent(AgentInConf,Agent: ${EXTEN})
 same => n,ConfBridge(agent-${EXTEN})
[lab-join-agent]
exten => _X!,1,MixMonitor(${ATTEMPT}.wav,b)
 same => n,ConfBridge(agent-${EXTEN})
[lab-agent-hold]
exten => _X!,1,Answer()
 same => n,UserEvent(AgentHolding,Agent: ${EXTEN})
 same => n,Wait(3600)
"""


def shipped() -> ExtensionTable:
    """The shipped extensions.conf with the lab contexts added."""
    text = resources.files("asterisk_conf").joinpath("extensions.conf").read_text()
    table = parse(text)
    table.contexts.update(parse(LAB).contexts)
    return table


EXTENSIONS = shipped()
