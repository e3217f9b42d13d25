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
from phonenumbers import PhoneNumberType
from phonenumbers import timezone as phone_timezone
from phonenumbers.phonenumberutil import is_number_type_geographical


class InvalidPhoneNumber(ValueError):
    """The text is not a valid phone number for the given region."""


def to_e164(raw: str, default_region: str) -> str:
    """Normalize `raw` (national or international form) to E.164, or raise."""
    return normalize(raw, default_region)[0]


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


@functools.lru_cache(maxsize=4096)
def _country_level_zones(country_code: int) -> tuple[str, ...]:
    number = phonenumbers.PhoneNumber(country_code=country_code, national_number=0)
    zones = tuple(
        z for z in phone_timezone._country_level_time_zones_for_number(number) if z != "Etc/Unknown"
    )
    if zones:
        return tuple(sorted(zones))
    region = phonenumbers.region_code_for_country_code(country_code)
    return _country_zones().get(region, ())


def normalize(raw: str, default_region: str) -> tuple[str, tuple[str, ...]]:
    """E.164 and time zones in one pass (the import's hot path: the number's type is
    computed once and serves both the validity check and the zone lookup)."""
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"not a phone number: {exc}") from None
    kind = phonenumbers.number_type(number)
    if kind == PhoneNumberType.UNKNOWN:
        raise InvalidPhoneNumber("not a valid number for its country")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    country_code = number.country_code or 0
    if is_number_type_geographical(kind, country_code):
        zones = tuple(
            z
            for z in phone_timezone.time_zones_for_geographical_number(number)
            if z != "Etc/Unknown"
        )
        zones = tuple(sorted(zones)) if zones else _country_level_zones(country_code)
    else:
        zones = _country_level_zones(country_code)
    return e164, zones
