"""Settings: one validated record built from defaults, a TOML file and the environment.

Precedence is defaults < TOML file < environment. Every setting has an environment name
`PRATICA_<SECTION>_<NAME>` (plus the conventional `DATABASE_URL` and `REDIS_URL`), and
every bad value is reported with where it came from, so an operator can fix it in one go.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """One or more settings are invalid; the message lists every problem."""


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    # Used to sign session cookies; the embedded default is generated under data_dir.
    secret_key: str = ""
    public_url: str = ""
    log_level: str = "INFO"


@dataclass(frozen=True)
class DatabaseSettings:
    # Empty: run a private PostgreSQL cluster under `<data_dir>/pg` (embedded mode).
    url: str = ""
    pool_min: int = 2
    pool_max: int = 10
    embedded_port: int = 0  # 0 picks a free port at start


@dataclass(frozen=True)
class RedisSettings:
    # Empty: use the in-process event bus (one node only).
    url: str = ""
    stream_maxlen: int = 100_000


@dataclass(frozen=True)
class LocaleSettings:
    # Region used to read phone numbers written without an international prefix.
    default_region: str = "IT"
    currency: str = "EUR"
    timezone: str = "Europe/Rome"


@dataclass(frozen=True)
class AmiSettings:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "pratica"
    secret: str = ""
    # Dial string template for outbound calls; `{number}` is the E.164 number without '+'.
    dial_template: str = "PJSIP/{number}@carrier"
    action_timeout: float = 5.0
    ping_interval: float = 10.0
    # AMI event classes to receive; without `dialplan` the traffic is ~60% smaller.
    events: str = "call,user,system"
    # The agent's nailed-up leg: `{extension}` (the user's SIP extension) or `{agent_id}`.
    agent_dial_template: str = "PJSIP/{extension}"


@dataclass(frozen=True)
class SoftphoneSettings:
    # wss:// URL of Asterisk's WebSocket transport; empty: no browser softphone (the agents'
    # legs are simulated, as in the demo).
    ws_url: str = ""
    # SIP domain of the agents' endpoints (their URI is sip:<extension>@<domain>).
    sip_domain: str = ""


@dataclass(frozen=True)
class AgentSettings:
    # Seconds of wrap-up after a call before the agent is made ready again.
    wrap_up_max: float = 60.0
    # Extra seconds an agent may add to one wrap-up ("more time" in the console).
    wrap_up_extend_max: float = 120.0
    # Seconds an agent's console may stay disconnected before the agent is paused.
    console_grace: float = 20.0
    # The pause reason of an agent whose console is gone (added to the pause reasons, with
    # 10 minutes, when they do not name it).
    disconnect_reason: str = "technical"
    # Pause reason codes with their maximum minutes (supervisors see overruns).
    pause_reasons: str = "break:15,lunch:60,training:120,meeting:60,technical:10"

    def pause_limits(self) -> dict[str, int]:
        """The pause reasons as {code: maximum seconds}; ValueError names the bad item."""
        out: dict[str, int] = {}
        for item in self.pause_reasons.split(","):
            code, _, minutes = item.strip().partition(":")
            if not code or not minutes.strip().isdigit() or int(minutes) <= 0:
                raise ValueError(f"expected code:minutes, got {item.strip()!r}")
            out[code.strip()] = int(minutes) * 60
        return out


@dataclass(frozen=True)
class DialerSettings:
    # Calls an agent places from a case: allowed between these local times of the debtor
    # (every zone the number may be in), any day. Campaigns have their own windows.
    manual_window_start: str = "08:00"
    manual_window_end: str = "21:00"


@dataclass(frozen=True)
class InboundSettings:
    # Seconds a caller waits in the queue before the callback message.
    max_wait: float = 90.0
    # Campaign that calls back abandoned inbound callers; 0: the active campaign that
    # already holds a lead of the case.
    callback_campaign: int = 0
    # Ready agents that outbound pacing leaves free for inbound callers.
    reserved_agents: int = 0
    # Every agent takes inbound callers too (blended) unless a supervisor says otherwise.
    blended: bool = True


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("var")
    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    locale: LocaleSettings = field(default_factory=LocaleSettings)
    ami: AmiSettings = field(default_factory=AmiSettings)
    softphone: SoftphoneSettings = field(default_factory=SoftphoneSettings)
    inbound: InboundSettings = field(default_factory=InboundSettings)
    dialer: DialerSettings = field(default_factory=DialerSettings)
    agents: AgentSettings = field(default_factory=AgentSettings)

    def manual_window(self) -> tuple[time, time]:
        """The manual-call window as times ("24:00" is the end of the day)."""
        return _clock_time(self.dialer.manual_window_start), _clock_time(
            self.dialer.manual_window_end
        )

    def validate(self) -> None:
        problems: list[str] = []
        if not 0 < self.server.port < 65536:
            problems.append(f"server.port: must be 1..65535, got {self.server.port}")
        if not 0 <= self.database.embedded_port < 65536:
            problems.append(
                f"database.embedded_port: must be 0..65535, got {self.database.embedded_port}"
            )
        if self.database.pool_min < 1 or self.database.pool_max < self.database.pool_min:
            problems.append("database.pool_min/pool_max: need 1 <= pool_min <= pool_max")
        if self.database.url and not self.database.url.startswith(("postgres://", "postgresql://")):
            problems.append("database.url: must start with postgresql://")
        if self.redis.url and not self.redis.url.startswith(("redis://", "rediss://", "unix://")):
            problems.append("redis.url: must start with redis://, rediss:// or unix://")
        if self.server.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            problems.append(f"server.log_level: unknown level {self.server.log_level!r}")
        if "{number}" not in self.ami.dial_template:
            problems.append("ami.dial_template: must contain {number}")
        if len(self.locale.default_region) != 2 or not self.locale.default_region.isupper():
            problems.append(
                f"locale.default_region: must be an ISO country code like 'IT', got "
                f"{self.locale.default_region!r}"
            )
        if self.softphone.ws_url and not self.softphone.ws_url.startswith(("wss://", "ws://")):
            problems.append("softphone.ws_url: must start with wss://")
        if self.softphone.ws_url and not self.softphone.sip_domain:
            problems.append("softphone.sip_domain: required when softphone.ws_url is set")
        if not 5 <= self.inbound.max_wait <= 3600:
            problems.append(
                f"inbound.max_wait: must be 5..3600 seconds, got {self.inbound.max_wait}"
            )
        if self.inbound.callback_campaign < 0 or self.inbound.reserved_agents < 0:
            problems.append("inbound.callback_campaign / reserved_agents: must not be negative")
        if not 5 <= self.agents.wrap_up_max <= 3600:
            problems.append(
                f"agents.wrap_up_max: must be 5..3600 seconds, got {self.agents.wrap_up_max}"
            )
        if not 0 <= self.agents.wrap_up_extend_max <= 3600:
            problems.append(
                "agents.wrap_up_extend_max: must be 0..3600 seconds, got "
                f"{self.agents.wrap_up_extend_max}"
            )
        if not 0 < self.agents.console_grace <= 3600:
            problems.append(
                f"agents.console_grace: must be over 0, at most 3600 s; got {self.agents.console_grace}"
            )
        if not self.agents.disconnect_reason.strip():
            problems.append("agents.disconnect_reason: a pause reason code is required")
        try:
            self.agents.pause_limits()
        except ValueError as exc:
            problems.append(f"agents.pause_reasons: {exc}")
        try:
            start, end = self.manual_window()
            if start >= end:
                problems.append("dialer.manual_window_start: must be before manual_window_end")
        except ValueError as exc:
            problems.append(f"dialer.manual_window_start/end: {exc}")
        if problems:
            raise SettingsError("invalid settings:\n  " + "\n  ".join(problems))


def _clock_time(text: str) -> time:
    if text == "24:00":
        return time(23, 59, 59)
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected a time like 08:00, got {text!r}") from None


# Conventional names accepted besides PRATICA_<SECTION>_<NAME>.
_ALIASES = {
    "DATABASE_URL": ("database", "url"),
    "REDIS_URL": ("redis", "url"),
}


def _coerce(value: Any, kind: Any, where: str) -> Any:
    if kind is Path:
        if not isinstance(value, str):
            raise SettingsError(f"{where}: expected a path, got {value!r}")
        return Path(value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        }:
            return value.lower() in {"1", "true", "yes", "on"}
        raise SettingsError(f"{where}: expected true/false, got {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise SettingsError(f"{where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{where}: expected an integer, got {value!r}") from None
    if kind is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{where}: expected a number, got {value!r}") from None
    if kind is str:
        if not isinstance(value, str):
            raise SettingsError(f"{where}: expected a string, got {value!r}")
        return value
    raise SettingsError(f"{where}: unsupported setting type {kind!r}")


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build settings from defaults, then `config_file` (TOML), then the environment.

    `overrides` are keyword arguments like `server__port=8081` applied last (used by the
    command line). Raises SettingsError naming every bad value.
    """
    env = os.environ if environ is None else environ
    raw: dict[str, dict[str, tuple[Any, str]]] = {}
    top: dict[str, tuple[Any, str]] = {}
    sections = {
        name: kind
        for name, kind in _field_types(Settings).items()
        if isinstance(kind, type) and dataclasses.is_dataclass(kind)
    }
    if config_file is None and env.get("PRATICA_CONFIG"):
        config_file = Path(env["PRATICA_CONFIG"])
    if config_file is not None:
        try:
            data = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SettingsError(f"config file not found: {config_file}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {config_file}: {exc}") from None
        for key, value in data.items():
            if key in sections:
                if not isinstance(value, dict):
                    raise SettingsError(f"{config_file}: [{key}] must be a table")
                for sub, subvalue in value.items():
                    raw.setdefault(key, {})[sub] = (subvalue, f"{config_file} [{key}] {sub}")
            elif key == "data_dir":
                top[key] = (value, f"{config_file} data_dir")
            else:
                raise SettingsError(f"{config_file}: unknown setting {key!r}")
    for name, value in env.items():
        if name in _ALIASES:
            section, sub = _ALIASES[name]
            raw.setdefault(section, {})[sub] = (value, f"environment {name}")
        elif name == "PRATICA_DATA_DIR":
            top["data_dir"] = (value, f"environment {name}")
        elif name.startswith("PRATICA_") and name != "PRATICA_CONFIG":
            rest = name[len("PRATICA_") :].lower()
            for section in sections:
                if rest.startswith(section + "_"):
                    raw.setdefault(section, {})[rest[len(section) + 1 :]] = (
                        value,
                        f"environment {name}",
                    )
                    break
    for key, value in overrides.items():
        if value is None:
            continue
        if "__" in key:
            section, sub = key.split("__", 1)
            raw.setdefault(section, {})[sub] = (value, f"option {section}.{sub}")
        else:
            top[key] = (value, f"option {key}")

    problems: list[str] = []
    built: dict[str, Any] = {}
    for section, kind in sections.items():
        types_ = _field_types(kind)
        values: dict[str, Any] = {}
        for sub, (value, where) in raw.get(section, {}).items():
            if sub not in types_:
                problems.append(f"{where}: unknown setting {section}.{sub}")
                continue
            try:
                values[sub] = _coerce(value, types_[sub], where)
            except SettingsError as exc:
                problems.append(str(exc))
        built[section] = kind(**values)
    for key, (value, where) in top.items():
        try:
            built[key] = _coerce(value, Path, where)
        except SettingsError as exc:
            problems.append(str(exc))
    if problems:
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems))
    settings = Settings(**built)
    settings.validate()
    return settings


def describe_settings() -> list[tuple[str, str, Any]]:
    """(environment name, TOML key, default) for every setting, for docs and `--help`."""
    rows: list[tuple[str, str, Any]] = [("PRATICA_DATA_DIR", "data_dir", Path("var"))]
    for section, kind in _field_types(Settings).items():
        if isinstance(kind, types.GenericAlias) or not dataclasses.is_dataclass(kind):
            continue
        for f in dataclasses.fields(kind):
            default = f.default
            rows.append(
                (f"PRATICA_{section.upper()}_{f.name.upper()}", f"[{section}] {f.name}", default)
            )
    return rows
