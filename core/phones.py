"""Phone numbers: normalization to E.164 and the time zones a number may ring in.

A number's zones decide when it may be called (the call window must hold in every zone
the number could be in). `phonenumbers` knows zones by prefix; for numbers it cannot place
(many mobiles answer 'Etc/Unknown') we fall back to every zone of the number's country,
from the IANA zone table, which is the conservative choice.
"""

from __future__ import annotations

import functools
from importlib import resources

import phonenumbers
from phonenumbers import timezone as phone_timezone


class InvalidPhoneNumber(ValueError):
    """The text is not a valid phone number for the given region."""


@functools.lru_cache(maxsize=200_000)
def to_e164(raw: str, default_region: str) -> str:
    """Normalize `raw` (national or international form) to E.164, or raise."""
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber("not a valid number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@functools.cache
def _country_zones() -> dict[str, tuple[str, ...]]:
    table = resources.files("tzdata") / "zoneinfo" / "zone.tab"
    zones: dict[str, list[str]] = {}
    for line in table.read_text("utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        zones.setdefault(fields[0], []).append(fields[2])
    return {country: tuple(sorted(names)) for country, names in zones.items()}


@functools.lru_cache(maxsize=200_000)
def time_zones(e164: str) -> tuple[str, ...]:
    """Every IANA zone the number may be in; empty when even the country is unknown."""
    number = phonenumbers.parse(e164, None)
    zones = tuple(z for z in phone_timezone.time_zones_for_number(number) if z != "Etc/Unknown")
    if zones:
        return tuple(sorted(zones))
    region = phonenumbers.region_code_for_number(number)
    return _country_zones().get(region or "", ())
