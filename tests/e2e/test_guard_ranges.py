"""The toll-fraud guard's national premium-rate / shared-cost table (src/guard/ranges.rs
`NATIONAL_PREMIUM`) checked against its cited source, Google libphonenumber as shipped in the PyPI
package `phonenumbers` (tests/requirements.txt). No Worker is needed.

For every prefix of the table, numbers are built by padding the prefix with digits to every length
libphonenumber could accept; at least one of them must be a valid number whose type is
PREMIUM_RATE or SHARED_COST, in the country the entry's description names. A prefix that no valid
premium or shared-cost number starts with is not what the table says it is.
"""
from __future__ import annotations

import random
import re

import pytest

from helpers import ROOT

phonenumbers = pytest.importorskip("phonenumbers", reason="pip install phonenumbers (tests/requirements.txt)")
from phonenumbers import PhoneNumberType  # noqa: E402

RANGES_RS = ROOT / "src" / "guard" / "ranges.rs"
WANTED = {PhoneNumberType.PREMIUM_RATE, PhoneNumberType.SHARED_COST}
# Mobile and fixed-line numbers are what the workforce's phones are: a blocked prefix must not hold them.
LEGITIMATE = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
MAX_E164_DIGITS = 15
RANDOM_PADDINGS = 40  # per length, besides the fixed ones


def national_premium_table() -> list[tuple[str, str]]:
    """(prefix digits, description) of each `NATIONAL_PREMIUM` entry, in source order."""
    src = RANGES_RS.read_text(encoding="utf-8")
    m = re.search(r"const\s+NATIONAL_PREMIUM\s*:\s*&\[\(&str,\s*&str\)\]\s*=\s*&\[(.*?)\n\];", src, re.S)
    assert m, f"no `const NATIONAL_PREMIUM: &[(&str, &str)] = &[ … ];` in {RANGES_RS}"
    body = m.group(1)
    rows = re.findall(r'\(\s*"([^"]*)"\s*,\s*"([^"]*)"\s*\)\s*,', body)
    # Every non-comment line of the table must be one entry: a row this regex missed is not checked.
    lines = [l.strip() for l in body.splitlines() if l.strip() and not l.strip().startswith("//")]
    unparsed = [l for l in lines if not re.fullmatch(r'\(\s*"[^"]*"\s*,\s*"[^"]*"\s*\),', l)]
    assert not unparsed and len(lines) == len(rows), f"unparsed lines in NATIONAL_PREMIUM: {unparsed}"
    return rows


TABLE = national_premium_table()


def paddings(prefix: str, seed: str):
    """Numbers `+<prefix><digits>` of every length up to 15 digits: fixed paddings, then random ones
    (seeded by the prefix, so that a failure is reproducible)."""
    rng = random.Random(seed)
    for total in range(len(prefix) + 1, MAX_E164_DIGITS + 1):
        n = total - len(prefix)
        fixed = ["0" * n, "1" * n, "5" * n, "9" * n, ("1234567890" * 2)[:n], ("9876543210" * 2)[:n]]
        for pad in fixed + ["".join(rng.choice("0123456789") for _ in range(n)) for _ in range(RANDOM_PADDINGS)]:
            yield "+" + prefix + pad


def classify(prefix: str) -> dict[int, list[str]]:
    """number type -> valid example numbers starting with `prefix`."""
    found: dict[int, list[str]] = {}
    for raw in paddings(prefix, prefix):
        try:
            n = phonenumbers.parse(raw, None)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(n):
            found.setdefault(phonenumbers.number_type(n), []).append(raw)
    return found


def type_name(t: int) -> str:
    return next((k for k, v in vars(PhoneNumberType).items() if v == t and k.isupper()), str(t))


def test_the_table_is_parsed_sorted_and_unique():
    assert len(TABLE) >= 40, f"only {len(TABLE)} entries parsed out of {RANGES_RS}"
    prefixes = [p for p, _ in TABLE]
    for p, what in TABLE:
        assert re.fullmatch(r"[1-9]\d{2,7}", p), f"{p!r} is not a digit prefix"
        assert re.match(r"[A-Z]{2} ", what), f"{p}: description {what!r} does not start with the ISO country"
    assert len(set(prefixes)) == len(prefixes), "duplicate prefixes"
    assert prefixes == sorted(prefixes), "the table says it is sorted by prefix"


@pytest.mark.parametrize("prefix,what", TABLE, ids=[p for p, _ in TABLE])
def test_prefix_holds_premium_or_shared_cost_numbers(prefix, what):
    found = classify(prefix)
    good = {t: nums for t, nums in found.items() if t in WANTED}
    summary = {type_name(t): nums[:2] for t, nums in found.items()}
    assert good, (f"+{prefix} ({what}): no valid PREMIUM_RATE/SHARED_COST number of libphonenumber "
                  f"{phonenumbers.__version__} starts with it; valid numbers found: {summary or 'none'}")
    country = what.split()[0]
    for nums in good.values():
        region = phonenumbers.region_code_for_number(phonenumbers.parse(nums[0], None))
        assert region == country, f"+{prefix}: {nums[0]} is in {region}, the table says {country}"
    # The type the description names (premium rate / shared cost) is among those found.
    named = set()
    if "premium" in what.lower():
        named.add(PhoneNumberType.PREMIUM_RATE)
    if "shared cost" in what.lower():
        named.add(PhoneNumberType.SHARED_COST)
    assert named & set(good), f"+{prefix} ({what}): libphonenumber says {sorted(map(type_name, good))}"


@pytest.mark.parametrize("prefix,what", TABLE, ids=[p for p, _ in TABLE])
def test_prefix_holds_no_mobile_or_fixed_line_number(prefix, what):
    """The guard refuses a whole prefix: no valid mobile or fixed-line number may start with it, or
    real users of that country would be refused as toll fraud."""
    found = classify(prefix)
    legit = {type_name(t): nums[:3] for t, nums in found.items() if t in LEGITIMATE}
    assert not legit, (f"+{prefix} ({what}) also covers ordinary numbers per libphonenumber "
                       f"{phonenumbers.__version__}: {legit}")
