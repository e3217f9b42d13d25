"""The shipped Asterisk configuration names every module its dialplan needs."""

from __future__ import annotations

import re
from pathlib import Path

import asterisk_conf

CONF = Path(asterisk_conf.__file__).parent
AMD_SETTINGS = {
    "initial_silence", "greeting", "after_greeting_silence", "total_analysis_time",
    "min_word_length", "between_words_silence", "maximum_number_of_words",
    "silence_threshold", "maximum_word_length",
}  # fmt: skip


def dialplan_lines() -> list[str]:
    lines = []
    for raw in (CONF / "extensions.conf").read_text().splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith(("exten", "same")):
            lines.append(line)
    return lines


def applications() -> set[str]:
    """`exten => name,prio,App(...)` and `same => n(label),App(...)`: the App names."""
    apps = set()
    for line in dialplan_lines():
        step = line.split("=>", 1)[1]
        fields = step.split(",", 2 if line.startswith("exten") else 1)
        match = re.match(r"\s*([A-Za-z]\w*)", fields[-1])
        assert match is not None, line
        apps.add(match.group(1))
    return apps


def functions() -> set[str]:
    return {name for line in dialplan_lines() for name in re.findall(r"\$\{([A-Z_]+)\(", line)}


def readme() -> str:
    return (CONF / "README.md").read_text()


def module_table() -> dict[str, str]:
    """First column (application or function) -> module column of the README's table."""
    section = readme().split("## Modules the dialplan needs", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[1]
    return rows


def core_applications() -> set[str]:
    section = readme().split("## Modules the dialplan needs", 1)[1]
    listed = section.split("Applications not listed (", 1)[1].split(")", 1)[0]
    return set(re.findall(r"`(\w+)`", listed))


def test_every_application_of_the_dialplan_is_listed_with_its_module() -> None:
    apps = applications()
    assert {"AMD", "ConfBridge", "MixMonitor", "UserEvent"} <= apps  # the parse found them
    missing = apps - set(module_table()) - core_applications()
    assert not missing, f"applications without a module in asterisk_conf/README.md: {missing}"


def test_every_function_of_the_dialplan_is_listed_with_its_module() -> None:
    found = functions()
    assert "IF" in found
    missing = {f"{name}()" for name in found} - set(module_table())
    assert not missing, f"functions without a module in asterisk_conf/README.md: {missing}"


def test_the_modules_conf_excerpt_loads_every_listed_module() -> None:
    text = readme()
    loaded = set(re.findall(r"^(?:pre)?load = (\w+)\.so$", text, re.MULTILINE))
    listed = {m for cell in module_table().values() for m in re.findall(r"`(\w+)`", cell)
              if m.startswith(("app_", "func_", "res_", "chan_", "bridge_", "format_", "codec_"))}  # fmt: skip
    assert {"app_amd", "app_confbridge", "bridge_softmix", "app_mixmonitor"} <= listed
    assert listed <= loaded


def test_amd_conf_sets_every_setting_of_asterisk_22() -> None:
    settings = {}
    for raw in (CONF / "amd.conf").read_text().splitlines():
        line = raw.split(";", 1)[0].strip()
        if "=" in line:
            name, value = (part.strip() for part in line.split("=", 1))
            settings[name] = value
    assert set(settings) == AMD_SETTINGS
    assert all(value.isdigit() for value in settings.values())
    assert "[general]" in (CONF / "amd.conf").read_text()
