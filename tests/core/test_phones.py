"""The fast path of phone normalization gives exactly what phonenumbers gives.

Differential test: many generated inputs (valid numbers of every type from the
library's own examples, mutated ones, random digit strings, national and
international forms, odd punctuation) go through `normalize` and through the library's
path; results and error messages must be identical.
"""

from __future__ import annotations

import random

import phonenumbers
import pytest
from phonenumbers import PhoneNumberType

from core import phones
from core.phones import InvalidPhoneNumber, normalize

REGIONS = (
    "IT", "VA", "SM", "US", "CA", "GB", "DE", "FR", "ES", "CH", "AT", "NL", "BE", "PL", "RO",
    "BR", "MX", "AR", "IN", "CN", "JP", "AU", "RU", "KZ", "AL", "MA", "TR", "SE", "IE", "PT",
)  # fmt: skip
TYPES = (
    PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE, PhoneNumberType.SHARED_COST, PhoneNumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER, PhoneNumberType.PAGER, PhoneNumberType.UAN,
    PhoneNumberType.VOICEMAIL,
)  # fmt: skip


def _outcome(call: object, raw: str, region: str) -> tuple[object, ...]:
    try:
        return ("ok", *call(raw, region))  # type: ignore[operator]
    except InvalidPhoneNumber as exc:
        return ("error", str(exc))


def _spaced(rng: random.Random, digits: str) -> str:
    odd = rng.random() < 0.2  # mostly the separators the fast path takes, sometimes others
    out = []
    for i, d in enumerate(digits):
        if i and rng.random() < 0.25:
            out.append(rng.choice([" ", "  ", ".", "/", "(", ")"] if odd else [" ", "-"]))
        out.append(d)
    return "".join(out)


def _inputs(rng: random.Random) -> list[tuple[str, str]]:
    cases: list[tuple[str, str]] = []
    for region in REGIONS:
        code = phonenumbers.country_code_for_region(region)
        for kind in TYPES:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            nsn = phonenumbers.national_significant_number(example)
            for _ in range(120):
                digits = list(nsn)
                for _ in range(rng.choice([0, 0, 1, 2, 3])):  # change some digits
                    digits[rng.randrange(len(digits))] = str(rng.randrange(10))
                if rng.random() < 0.15:
                    del digits[rng.randrange(len(digits))]
                if rng.random() < 0.15:
                    digits.insert(rng.randrange(len(digits) + 1), str(rng.randrange(10)))
                body = "".join(digits)
                form = rng.random()
                if form < 0.35:
                    text = body
                elif form < 0.6:
                    text = f"+{code}{body}"
                elif form < 0.7:
                    text = f"00{code}{body}"
                elif form < 0.8:
                    text = f"{code}{body}"
                elif form < 0.9:
                    text = f"0{body}"
                else:
                    text = f"+{body}"
                if rng.random() < 0.5:
                    text = (text[0] if text[0] == "+" else "") + _spaced(rng, text.lstrip("+"))
                cases.append((text, rng.choice([region, region, "IT", "US", "DE"])))
    for _ in range(6000):  # random digit strings
        digits = "".join(str(rng.randrange(10)) for _ in range(rng.randint(1, 19)))
        prefix = rng.choice(["", "", "", "+", "00", "0", "39", "+39", "+1", "+44", "+800"])
        cases.append((prefix + digits, rng.choice(REGIONS)))
    cases += [
        ("12", "IT"), ("+", "IT"), ("+0", "IT"), ("+01234567", "IT"), ("++393331234567", "IT"),
        ("333 1234567", "ZZ"), ("+39 333 1234567", "ZZ"), ("333 1234567", "it"),
        ("tel:+39-333-1234567", "IT"), ("333 123 4567 ext 12", "IT"), ("333-1234567#", "IT"),
        ("+800 1234 5678", "IT"), ("+870 773 111 632", "IT"), ("+979 123456789", "GB"),
        ("06 698 12345", "VA"), ("+39 06 698 12345", "IT"), ("+39 0549 123456", "SM"),
        ("0549 123456", "SM"), ("+1 212 555 0123", "IT"), ("+1 264 235 1234", "US"),
        ("2125550123", "US"), ("1 212 555 0123", "US"), ("011 39 333 1234567", "US"),
        ("333 1234567 ", "IT"), (" 333 1234567", "IT"), ("333  1234567", "IT"),
        ("3331234567", "IT"), ("3912345678", "IT"), ("39 333 1234567", "IT"),
        ("0000000", "IT"), ("00", "IT"), ("+39 0000000000", "IT"), ("+7 700 123 4567", "RU"),
    ]  # fmt: skip
    return cases


def test_fast_path_matches_phonenumbers() -> None:
    rng = random.Random(20261201)
    cases = _inputs(rng)
    fast = 0
    for raw, region in cases:
        expected = _outcome(phones._reference_normalize, raw, region)
        assert _outcome(normalize, raw, region) == expected, (raw, region)
        if phones._fast_normalize(raw, region) is not None:
            fast += 1
            assert expected[0] == "ok", (raw, region)
    # The comparison means something only if the fast path ran on much of the input.
    assert len(cases) > 30_000 and fast > len(cases) // 5, (len(cases), fast)


def test_reference_path_is_the_library() -> None:
    """The slow path used for comparison is phonenumbers' own parse/type/format."""
    for raw, region in [("333 123 4567", "IT"), ("06 1234 5678", "IT"), ("+1 212 555 0123", "IT")]:
        number = phonenumbers.parse(raw, region)
        assert phonenumbers.is_valid_number(number)
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        assert phones._reference_normalize(raw, region)[0] == e164
    with pytest.raises(InvalidPhoneNumber, match="not a valid number for its country"):
        normalize("12", "IT")
    assert normalize("+39 06 1234 5678", "IT") == ("+390612345678", ("Europe/Rome",))


async def test_the_stored_numbers_check_is_the_e164_pattern(conn) -> None:
    """Core migration 0003 replaced the regular expression of phones.e164's CHECK with string
    functions: both must accept exactly the same strings."""
    rng = random.Random(11)
    alphabet = "+0123456789 -a٣"  # with a non-ASCII digit: both must refuse it
    samples = ["", "+", "+1", "+0123456789", "+123456", "+1234567", "+123456789012345",
               "+1234567890123456", "++1234567", "+12345a7", "1234567890", "+٣23456789",
               " +12345678", "+12345678 "]  # fmt: skip
    samples += [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 18))) for _ in range(3000)
    ]
    samples += [
        "+" + "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 16)))
        for _ in range(3000)
    ]
    check = await conn.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'phones_e164_check'"
    )
    assert "~" not in check  # the regular expression is gone
    expression = check.removeprefix("CHECK ").replace("e164", "s")
    # The expression is the catalog's own text of the constraint, not input.
    query = f"SELECT s, {expression} AS new, s ~ '^\\+[1-9][0-9]{{6,14}}$' AS old FROM unnest($1::text[]) AS s"  # noqa: S608
    rows = await conn.fetch(query, samples)
    differ = [r["s"] for r in rows if r["new"] is not r["old"]]
    assert differ == []
    assert sum(r["old"] for r in rows) > 1000  # both outcomes are well represented


async def test_a_number_is_found_through_its_index(conn) -> None:
    """Caller identification looks numbers up by equality, through the hash index."""
    debtor = await conn.fetchval("INSERT INTO debtors (last_name) VALUES ('Rossi') RETURNING id")
    await conn.executemany(
        "INSERT INTO phones (debtor_id, e164) VALUES ($1, $2)",
        [(debtor, f"+39333{n:07d}") for n in range(2000)],
    )
    await conn.execute("ANALYZE phones")
    plan = await conn.fetchval(
        "EXPLAIN (FORMAT JSON) SELECT debtor_id FROM phones WHERE e164 = $1", "+393330001234"
    )
    assert "phones_e164_idx" in str(plan)
    assert (
        await conn.fetchval("SELECT debtor_id FROM phones WHERE e164 = '+393330001234'") == debtor
    )
