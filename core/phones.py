"""Phone numbers: normalization to E.164 and the time zones a number may ring in.

A number's zones decide when it may be called (the call window must hold in every zone
the number could be in). `phonenumbers` knows zones by prefix; for numbers it cannot place
(many mobiles answer 'Etc/Unknown') we fall back to every zone of the number's country,
from the IANA zone table, which is the conservative choice.

`normalize` is the import's hot path (two numbers per row, a million rows). Numbers
written plainly (digits, single spaces or hyphens, an optional leading '+') take an exact
fast path: the same steps `phonenumbers.parse`, `number_type`, `format_number` and the
time-zone lookup take for such input, against the same metadata, with the metadata's
patterns compiled once. Whenever an input leaves the ground that path covers (an
international prefix such as 00, a national prefix to strip, digits that could be the
home country code, any other character), or the number would be invalid, the library
itself decides, so errors and odd inputs keep its exact behaviour.
`tests/core/test_phones.py` checks the identity over many generated numbers.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from importlib import resources

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, PhoneNumberType
from phonenumbers import timezone as phone_timezone
from phonenumbers.phonenumberutil import (
    _MAX_LENGTH_COUNTRY_CODE,
    _MAX_LENGTH_FOR_NSN,
    _MIN_LENGTH_FOR_NSN,
    SUPPORTED_REGIONS,
    is_number_type_geographical,
)
from phonenumbers.tzdata import TIMEZONE_DATA

_UNKNOWN_ZONE = "Etc/Unknown"


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
    zones = tuple(z for z in phone_timezone.time_zones_for_number(number) if z != _UNKNOWN_ZONE)
    if zones:
        return tuple(sorted(zones))
    region = phonenumbers.region_code_for_number(number)
    return _country_zones().get(region or "", ())


@functools.lru_cache(maxsize=4096)
def _country_level_zones(country_code: int) -> tuple[str, ...]:
    number = phonenumbers.PhoneNumber(country_code=country_code, national_number=0)
    zones = tuple(
        z for z in phone_timezone._country_level_time_zones_for_number(number) if z != _UNKNOWN_ZONE
    )
    if zones:
        return tuple(sorted(zones))
    region = phonenumbers.region_code_for_country_code(country_code)
    return _country_zones().get(region, ())


@functools.lru_cache(maxsize=1024)
def _zone_prefix_lengths(country_code: int) -> tuple[int, ...]:
    """Longest first, the lengths of the zone table's prefixes that can begin a number of
    this calling code (those extending the code, and those the code extends): the only
    lengths time_zones_for_geographical_number's probing can find."""
    code = str(country_code)
    return tuple(
        sorted(
            {len(p) for p in TIMEZONE_DATA if p.startswith(code) or code.startswith(p)},
            reverse=True,
        )
    )


def _zones_for(kind: int, country_code: int, e164: str) -> tuple[str, ...]:
    """The zones of a valid number of type `kind`: its prefix's zones when it is
    geographical, else (or when its prefix is unplaced) every zone of its country."""
    if is_number_type_geographical(kind, country_code):
        # phonenumbers.timezone.time_zones_for_geographical_number: longest known prefix.
        found: tuple[str, ...] = (_UNKNOWN_ZONE,)
        for length in _zone_prefix_lengths(country_code):
            zones = TIMEZONE_DATA.get(e164[1 : 1 + length])
            if zones is not None:
                found = zones
                break
        placed = tuple(z for z in found if z != _UNKNOWN_ZONE)
        if placed:
            return tuple(sorted(placed))
    return _country_level_zones(country_code)


def _reference_normalize(raw: str, default_region: str) -> tuple[str, tuple[str, ...]]:
    """The library's own path, for every input the fast path does not take."""
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"not a phone number: {exc}") from None
    kind = phonenumbers.number_type(number)
    if kind == PhoneNumberType.UNKNOWN:
        raise InvalidPhoneNumber("not a valid number for its country")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164, _zones_for(kind, number.country_code or 0, e164)


# --- the fast path ----------------------------------------------------------------------

# Digits in groups separated by one space or hyphen, optionally after a '+': for such text
# phonenumbers' extraction, viability, extension and RFC 3966 steps keep every character,
# and its normalization keeps exactly the digits.
_PLAIN = re.compile(r"\+?[0-9]+(?:[ -][0-9]+)*")


@dataclass(frozen=True)
class _Desc:
    """A PhoneNumberDesc reduced to what matching a national number needs."""

    lengths: frozenset[int]
    pattern: re.Pattern[str] | None

    def matches(self, nsn: str) -> bool:
        # phonenumberutil._is_number_matching_desc with allow_prefix_match False.
        if self.lengths and len(nsn) not in self.lengths:
            return False
        return self.pattern is not None and self.pattern.fullmatch(nsn) is not None


_NEVER = _Desc(frozenset(), None)


def _desc(desc: object | None) -> _Desc:
    if desc is None:
        return _NEVER
    pattern = getattr(desc, "national_number_pattern", None)
    return _Desc(
        frozenset(getattr(desc, "possible_length", ()) or ()),
        re.compile(pattern) if pattern else None,
    )


# The types in the order phonenumberutil._number_type_helper tries them.
_SPECIAL_TYPES = (
    ("premium_rate", PhoneNumberType.PREMIUM_RATE),
    ("toll_free", PhoneNumberType.TOLL_FREE),
    ("shared_cost", PhoneNumberType.SHARED_COST),
    ("voip", PhoneNumberType.VOIP),
    ("personal_number", PhoneNumberType.PERSONAL_NUMBER),
    ("pager", PhoneNumberType.PAGER),
    ("uan", PhoneNumberType.UAN),
    ("voicemail", PhoneNumberType.VOICEMAIL),
)


@dataclass(frozen=True)
class _Plan:
    """One region's (or non-geographic entity's) metadata, compiled."""

    country_code: int
    international_prefix: re.Pattern[str] | None
    national_prefix: re.Pattern[str] | None
    leading_digits: re.Pattern[str] | None
    general: _Desc
    special: tuple[tuple[_Desc, int], ...]
    fixed_line: _Desc
    mobile: _Desc
    same_mobile_and_fixed_line: bool
    by_length: dict[int, tuple[re.Pattern[str] | None, tuple[int, ...]]] = field(
        default_factory=dict, compare=False
    )

    def _candidates(self, length: int) -> tuple[re.Pattern[str] | None, tuple[int, ...]]:
        """The descriptions after the general one that a national number of `length`
        digits may match, in _number_type_helper's order, as one alternation: fullmatch
        of (?:a)|(?:b)|... takes the first alternative that matches the whole number,
        which is the first description the helper would accept."""
        found = self.by_length.get(length)
        if found is None:
            ordered = [*self.special, (self.fixed_line, _FIXED)]
            if not self.same_mobile_and_fixed_line:
                ordered.append((self.mobile, PhoneNumberType.MOBILE))
            kept = [
                (desc.pattern.pattern, kind)
                for desc, kind in ordered
                if desc.pattern is not None and (not desc.lengths or length in desc.lengths)
            ]
            if kept and all(_combinable(pattern) for pattern, _ in kept):
                alternatives = (f"(?P<t{i}>{pattern})" for i, (pattern, _) in enumerate(kept))
                found = (re.compile("|".join(alternatives)), tuple(kind for _, kind in kept))
            else:
                found = (None, ())
            self.by_length[length] = found
        return found

    def number_type(self, nsn: str) -> int:
        """phonenumberutil._number_type_helper."""
        if not self.general.matches(nsn):
            return PhoneNumberType.UNKNOWN
        combined, kinds = self._candidates(len(nsn))
        if combined is not None:
            match = combined.fullmatch(nsn)
            if match is None:
                return PhoneNumberType.UNKNOWN
            kind = kinds[int(match.lastgroup[1:])]  # type: ignore[index]
            if kind == _FIXED:
                if self.same_mobile_and_fixed_line or self.mobile.matches(nsn):
                    return PhoneNumberType.FIXED_LINE_OR_MOBILE
                return PhoneNumberType.FIXED_LINE
            return kind
        for desc, kind in self.special:
            if desc.matches(nsn):
                return kind
        if self.fixed_line.matches(nsn):
            if self.same_mobile_and_fixed_line or self.mobile.matches(nsn):
                return PhoneNumberType.FIXED_LINE_OR_MOBILE
            return PhoneNumberType.FIXED_LINE
        if not self.same_mobile_and_fixed_line and self.mobile.matches(nsn):
            return PhoneNumberType.MOBILE
        return PhoneNumberType.UNKNOWN


# Marks the fixed-line alternative (its type depends on the mobile pattern too).
_FIXED = -1


def _combinable(pattern: str) -> bool:
    """Whether a metadata pattern can sit inside a named group of an alternation: no
    groups of its own that the wrapping would renumber or rename, no inline flags."""
    return re.search(r"\\[1-9]|\(\?P|\(\?[aiLmsux]|\((?!\?)", pattern) is None


def _compile(metadata: PhoneMetadata | None) -> _Plan | None:
    if metadata is None:
        return None
    return _Plan(
        country_code=metadata.country_code or 0,
        international_prefix=(
            re.compile(metadata.international_prefix) if metadata.international_prefix else None
        ),
        national_prefix=(
            re.compile(metadata.national_prefix_for_parsing)
            if metadata.national_prefix_for_parsing
            else None
        ),
        leading_digits=re.compile(metadata.leading_digits) if metadata.leading_digits else None,
        general=_desc(metadata.general_desc),
        special=tuple((_desc(getattr(metadata, name)), kind) for name, kind in _SPECIAL_TYPES),
        fixed_line=_desc(metadata.fixed_line),
        mobile=_desc(metadata.mobile),
        same_mobile_and_fixed_line=bool(metadata.same_mobile_and_fixed_line_pattern),
    )


@functools.cache
def _region_plan(region: str) -> _Plan | None:
    return _compile(PhoneMetadata.metadata_for_region(region, None))


@functools.cache
def _entity_plan(country_code: int, region: str) -> _Plan | None:
    """PhoneMetadata.metadata_for_region_or_calling_code, compiled."""
    if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
        return _compile(PhoneMetadata.metadata_for_nongeo_region(country_code, None))
    return _region_plan(region)


def _classify(country_code: int, nsn: str) -> int:
    """phonenumbers.number_type for a parsed number (region_code_for_number, then the type
    against that region's metadata)."""
    regions = COUNTRY_CODE_TO_REGION_CODE.get(country_code)
    if regions is None:
        return PhoneNumberType.UNKNOWN
    if len(regions) == 1:
        plan = _entity_plan(country_code, regions[0])
        return plan.number_type(nsn) if plan is not None else PhoneNumberType.UNKNOWN
    for region in regions:
        # phonenumberutil._region_code_for_number_from_list.
        plan = _region_plan(region.upper())
        if plan is None:
            continue
        if plan.leading_digits is not None:
            if plan.leading_digits.match(nsn):
                return plan.number_type(nsn)
        else:
            kind = plan.number_type(nsn)
            if kind != PhoneNumberType.UNKNOWN:
                return kind  # the same computation number_type repeats
    return PhoneNumberType.UNKNOWN


def _fast_normalize(raw: str, default_region: str) -> tuple[str, tuple[str, ...]] | None:
    """normalize() for plainly written valid numbers; None: ask the library."""
    if default_region not in SUPPORTED_REGIONS or _PLAIN.fullmatch(raw) is None:
        return None
    home = _region_plan(default_region)
    if home is None:
        return None
    digits = raw.lstrip("+").replace(" ", "").replace("-", "")  # _PLAIN: one leading + at most
    if raw[0] == "+":
        # _maybe_extract_country_code, FROM_NUMBER_WITH_PLUS_SIGN: the first 1-3 digits
        # naming a known calling code.
        if len(digits) <= _MIN_LENGTH_FOR_NSN or digits[0] == "0":
            return None
        for size in range(1, min(len(digits), _MAX_LENGTH_COUNTRY_CODE) + 1):
            if int(digits[:size]) in COUNTRY_CODE_TO_REGION_CODE:
                country_code, nsn = int(digits[:size]), digits[size:]
                break
        else:
            return None
        number_region = COUNTRY_CODE_TO_REGION_CODE[country_code][0]
        plan = (
            home if number_region == default_region else _entity_plan(country_code, number_region)
        )
        if plan is None:
            return None
    else:
        # FROM_DEFAULT_COUNTRY, unless the text starts with the region's international
        # prefix or with its country code (the library weighs both readings then).
        if home.international_prefix is not None and home.international_prefix.match(digits):
            return None
        if digits.startswith(str(home.country_code)):
            return None
        plan, country_code, nsn = home, home.country_code, digits
    if not _MIN_LENGTH_FOR_NSN <= len(nsn) <= _MAX_LENGTH_FOR_NSN:
        return None
    if plan.national_prefix is not None and plan.national_prefix.match(nsn):
        return None  # a national prefix the library may strip
    kind = _classify(country_code, nsn)
    if kind == PhoneNumberType.UNKNOWN:
        return None
    # The national significant number keeps its leading zeros (italian_leading_zero and
    # number_of_leading_zeros restore exactly the digits given), so E.164 is plain text.
    e164 = f"+{country_code}{nsn}"
    return e164, _zones_for(kind, country_code, e164)


def normalize(raw: str, default_region: str) -> tuple[str, tuple[str, ...]]:
    """E.164 and time zones, or InvalidPhoneNumber."""
    fast = _fast_normalize(raw, default_region)
    if fast is not None:
        return fast
    return _reference_normalize(raw, default_region)
