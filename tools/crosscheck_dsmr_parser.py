#!/usr/bin/env python3
"""Cross-check `p1lb parse --json` against Home Assistant's dsmr_parser.

Usage: tools/crosscheck_dsmr_parser.py PATH/TO/p1lb

For every sample in tests/telegrams/ this script

1. runs our binary (`p1lb parse --json FILE`) and takes the one telegram it prints;
2. parses the same bytes with dsmr_parser (pinned: dsmr-parser==1.11.2) using the
   telegram specification the sample was written for (see tests/telegrams/INDEX.md);
3. compares every OBIS object dsmr_parser found with ours: numbers as Decimal
   (value and number of decimals), units (case-insensitive), strings, timestamps
   (as instants in UTC), M-Bus/peak readings (value, unit, timestamp) and logs
   (count and every entry). Every OBIS key dsmr_parser found must be in ours.

Exit codes: 0 all equal; 1 a mismatch (or too few objects compared, or our binary
failed); 77 dsmr_parser is not importable (the Rust test decides whether to skip).

Normalizations (the only ones; each is also commented where it is applied):
- OBIS keys: dsmr_parser has no key per object (its telegram is keyed by line
  regexes), so the key is taken from the start of the telegram line it parsed, and
  a trailing "*255" (EasyMeter Q3D prints F=255) is dropped, as our JSON does.
- An empty value "()" is None in dsmr_parser and "" in our JSON.
- Units are compared case-insensitively; None only equals None.
- Timestamps without a DST flag (DSMR 2.2/3 gas) are read as Europe/Amsterdam local
  time, like dsmr_parser does; two-digit years use Python's %y pivot (69-99 -> 19xx,
  00-68 -> 20xx) like dsmr_parser does.
- dsmr_parser reads "S"/"W" timestamps in the Europe/Amsterdam zone and uses the flag
  only to pick the fold of the ambiguous autumn hour. Where the meter's flag
  contradicts the zone's rule (e.g. "200305122139S": 5 March with the summer flag),
  it ignores the flag. We read the flag as the DSMR spec defines it (S = UTC+2,
  W = UTC+1). When the instants differ only for that reason it is reported as a
  NOTE, not a mismatch. Since dsmr_parser cannot vouch for the flag, our timestamp
  string must also appear verbatim in the telegram line dsmr_parser parsed.
"""

from __future__ import annotations

import copy
import decimal
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_SKIP = 77  # dsmr_parser missing

try:
    from dsmr_parser import telegram_specifications as specs
    from dsmr_parser.objects import (
        CosemObject,
        MBusObject,
        MBusObjectPeak,
        ProfileGenericObject,
    )
    from dsmr_parser.parsers import TelegramParser
except ImportError as err:  # pragma: no cover - depends on the environment
    print(
        f"dsmr_parser is not importable ({err}); "
        "install it with: python3 -m pip install dsmr-parser==1.11.2",
        file=sys.stderr,
    )
    sys.exit(EXIT_SKIP)

try:
    from zoneinfo import ZoneInfo
except ImportError:  # pragma: no cover - Python < 3.9; dsmr_parser needs it anyway
    print("zoneinfo is missing (Python >= 3.9 needed)", file=sys.stderr)
    sys.exit(EXIT_SKIP)

REPO = Path(__file__).resolve().parent.parent
TELEGRAMS = REPO / "tests" / "telegrams"

# dsmr_parser's local zone for DSMR timestamps (dsmr_parser/value_types.py).
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
# What the DSMR flag means: S = summer time (UTC+2), W = winter time (UTC+1).
DST_FLAG_OFFSET = {"S": timedelta(hours=2), "W": timedelta(hours=1)}

SMARTY_KEY = "AA" * 16
SMARTY_AUTH_KEY = "BB" * 16


def without_cipher(spec: dict) -> dict:
    """The same specification for a telegram that is already decrypted."""
    plain = copy.deepcopy(spec)
    plain["general_global_cipher"] = False
    return plain


@dataclass
class Case:
    """One sample file, the dsmr_parser specification it was written for and how
    many objects at least must be compared (today's count with dsmr-parser 1.11.2:
    fewer means the comparison silently lost coverage)."""

    file: str
    spec_name: str
    spec: dict
    min_objects: int
    our_args: list[str] = field(default_factory=list)
    encrypted: bool = False


CASES = [
    Case("be-emucs171-fluvius.txt", "BELGIUM_FLUVIUS", specs.BELGIUM_FLUVIUS, 36),
    Case("de-easymeter-q3db1024.txt", "Q3D", specs.Q3D, 9),
    # The plaintext of the Smarty sample; its source is dsmr_parser's
    # TELEGRAM_SAGEMCOM_T210_D_R, whose specification expects an encrypted frame,
    # so the same object list is used with decryption switched off.
    Case(
        "lu-smarty-sagemcom-t210dr-plain.txt",
        "SAGEMCOM_T210_D_R (plaintext)",
        without_cipher(specs.SAGEMCOM_T210_D_R),
        18,
    ),
    Case(
        "lu-smarty-sagemcom-t210dr-encrypted.bin",
        "SAGEMCOM_T210_D_R (AES-128-GCM)",
        specs.SAGEMCOM_T210_D_R,
        18,
        our_args=["--key", SMARTY_KEY, "--auth-key", SMARTY_AUTH_KEY],
        encrypted=True,
    ),
    Case("nl-dsmr22-iskra-mt382.txt", "V2_2", specs.V2_2, 16),
    Case("nl-dsmr30-iskra-mt382.txt", "V3", specs.V3, 16),
    Case("nl-dsmr42-kaifa.txt", "V4", specs.V4, 33),
    Case("nl-dsmr50-iskra-m550-two-mbus.txt", "V5", specs.V5, 38),
    Case("nl-dsmr50-iskra-mt382.txt", "V5", specs.V5, 37),
    Case("nl-dsmr50-warmtelink-unpadded-crc.txt", "V5", specs.V5, 7),
    Case("nl-esmr50-sagemcom-t210d-seed.txt", "V5", specs.V5, 35),
]


# --------------------------------------------------------------------------- ours


def run_ours(binary: str, case: Case) -> dict:
    """Run `p1lb parse --json` on the sample; return its one (valid) telegram."""
    cmd = [binary, "parse", "--json", *case.our_args, str(TELEGRAMS / case.file)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}{proc.stderr}"
        )
    telegrams = [
        json.loads(line, parse_float=Decimal)
        for line in proc.stdout.splitlines()
        if line.strip()
    ]
    if len(telegrams) != 1 or not telegrams[0].get("valid"):
        raise RuntimeError(
            f"expected exactly one valid telegram from {case.file}, got:\n{proc.stdout}"
        )
    return telegrams[0]


# ---------------------------------------------------------------------- dsmr_parser


@dataclass
class Parsed:
    """One telegram line dsmr_parser parsed: our OBIS key, the line, its name, its object."""

    key: str
    line: str
    name: str
    obj: Any


class Recorder:
    """Wraps a dsmr_parser line parser to remember which line produced which object.

    dsmr_parser's Telegram is keyed by line regexes (several channels share one),
    so the OBIS code of each object is taken from the line handed to the parser.
    Objects are recorded only when the parser succeeded, i.e. exactly the ones
    TelegramParser.parse adds to its Telegram.
    """

    def __init__(self, inner: Any, name: str, parsed: list, failed: list) -> None:
        self.inner = inner
        self.name = name
        self.parsed = parsed
        self.failed = failed

    def parse(self, line: str) -> Any:
        try:
            obj = self.inner.parse(line)
        except Exception as err:
            self.failed.append(f"{self.name}: {line.strip()!r}: {err}")
            raise
        self.parsed.append(Parsed(obis_key(line), line, self.name, obj))
        return obj


def obis_key(line: str) -> str:
    """The OBIS reference at the start of a telegram line, as our JSON prints it.

    Normalization: EasyMeter Q3D prints "1-0:1.8.0*255"; F=255 is the default, and
    our JSON drops "*255" (README, `p1lb parse`), so it is dropped here too.
    """
    key = line.split("(", 1)[0].strip()
    return key[: -len("*255")] if key.endswith("*255") else key


def run_dsmr_parser(case: Case) -> tuple[list[Parsed], list[str]]:
    """Parse the sample with dsmr_parser; return the parsed objects and failures."""
    parsed: list[Parsed] = []
    failed: list[str] = []
    # A deep copy per file: dsmr_parser's ProfileGenericParser grows its list of
    # value parsers on every call, so a shared specification carries state over
    # from one telegram to the next.
    spec = copy.deepcopy(case.spec)
    for entry in spec["objects"]:
        entry["value_parser"] = Recorder(
            entry["value_parser"], entry["value_name"], parsed, failed
        )
    parser = TelegramParser(spec, apply_checksum_validation=True)
    raw = (TELEGRAMS / case.file).read_bytes()
    if case.encrypted:
        # dsmr_parser takes an encrypted frame as hex text, decrypts it and checks
        # the GCM tag with the authentication key.
        parser.parse(
            raw.hex(),
            encryption_key=SMARTY_KEY,
            authentication_key=SMARTY_AUTH_KEY,
            throw_ex=False,
        )
    else:
        # latin-1 maps every byte to the code point of the same value, so the CRC
        # dsmr_parser computes over the text is the CRC over the wire bytes (the
        # EasyMeter sample has 0xFF junk after its footer).
        parser.parse(raw.decode("latin-1"), throw_ex=False)
    return parsed, failed


# ----------------------------------------------------------------------- comparing


def show(value: Any) -> str:
    """repr, but datetimes as ISO 8601 text."""
    return value.isoformat() if isinstance(value, datetime) else repr(value)


class Mismatches:
    """Collects mismatches and notes for one file; `line` is the telegram line of
    the object being compared."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.notes: list[str] = []
        self.line = ""

    def add(self, key: str, what: str, ours: Any, theirs: Any) -> None:
        self.items.append(f"{key} {what}: ours {show(ours)} vs dsmr_parser {show(theirs)}")

    def note(self, text: str) -> None:
        self.notes.append(text)


def as_decimal(value: Any) -> Decimal | None:
    """Our number (Decimal from json, int, or a numeric string) as a Decimal."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    if isinstance(value, str):
        try:
            return Decimal(value)
        except decimal.InvalidOperation:
            return None
    return None


def compare_number(key: str, what: str, ours: Any, theirs: Any, out: Mismatches) -> None:
    """Equal as Decimal, and the same number of decimals (our contract: the number
    exactly as printed, leading zeros dropped). dsmr_parser's Decimal keeps the
    printed decimals; its int means the meter printed none."""
    mine = as_decimal(ours)
    if mine is None or mine != theirs:
        out.add(key, what, ours, theirs)
        return
    printed = theirs.as_tuple().exponent if isinstance(theirs, Decimal) else 0
    if mine.as_tuple().exponent != printed:
        out.add(key, f"{what} (decimals)", ours, theirs)


def compare_unit(key: str, ours: Any, theirs: Any, out: Mismatches) -> None:
    """Units are equal ignoring case (meters print "kWh" and "KWH"); None == None only."""
    if ours is None or theirs is None:
        if ours is not theirs:
            out.add(key, "unit", ours, theirs)
    elif ours.lower() != theirs.lower():
        out.add(key, "unit", ours, theirs)


def our_instant(text: str) -> datetime | None:
    """Our "YYMMDDhhmmss[SW]" string as an aware UTC datetime.

    S = summer time = UTC+2, W = winter time = UTC+1 (DSMR). Without a flag (DSMR 2.2/3
    gas) the time is Europe/Amsterdam local time, as in dsmr_parser. Two-digit years:
    Python's %y pivot (69-99 -> 19xx), as in dsmr_parser.
    """
    m = re.fullmatch(r"(\d{12})([SW]?)", text)
    if not m:
        return None
    try:
        naive = datetime.strptime(m.group(1), "%y%m%d%H%M%S")
    except ValueError:
        return None
    flag = m.group(2)
    if not flag:
        return naive.replace(tzinfo=AMSTERDAM).astimezone(timezone.utc)
    return (naive - DST_FLAG_OFFSET[flag]).replace(tzinfo=timezone.utc)


def flag_contradicts_zone(text: str) -> bool:
    """True when the S/W flag disagrees with Europe/Amsterdam's DST at that time."""
    naive = datetime.strptime(text[:12], "%y%m%d%H%M%S")
    summer = bool(naive.replace(tzinfo=AMSTERDAM).dst())
    return (text[12:] == "S") != summer


def compare_timestamp(key: str, what: str, ours: Any, theirs: Any, out: Mismatches) -> None:
    """Our timestamp string against dsmr_parser's aware datetime (or None)."""
    if not isinstance(ours, str):
        out.add(key, what, ours, theirs)
        return
    if ours[12:] and f"({ours})" not in out.line:
        # dsmr_parser reads the S/W flag only in the ambiguous autumn hour, so it
        # cannot vouch for our flag; the flag must be the one the meter printed.
        out.add(key, f"{what} (not as printed in {out.line.strip()!r})", ours, theirs)
        return
    mine = our_instant(ours)
    if mine is None or theirs is None:
        if mine is not None or theirs is not None:
            out.add(key, what, ours, theirs)
        return
    if mine == theirs:
        return
    # dsmr_parser quirk (see the module docstring): it ignores a flag that
    # contradicts the Europe/Amsterdam rules. Accepted only when dsmr_parser's
    # instant is the zone's reading of the same wall-clock digits (our string was
    # checked above to be the text exactly as the meter printed it).
    zone_reading = (
        datetime.strptime(ours[:12], "%y%m%d%H%M%S")
        .replace(tzinfo=AMSTERDAM)
        .astimezone(timezone.utc)
    )
    if ours[12:] and flag_contradicts_zone(ours) and theirs == zone_reading:
        out.note(
            f"{key} {what}: {ours!r} carries a DST flag Europe/Amsterdam does not have "
            f"at that time; ours (flag) {mine.isoformat()}, dsmr_parser (zone) "
            f"{theirs.isoformat()}"
        )
        return
    out.add(key, what, f"{ours} = {mine.isoformat()}", theirs.isoformat())


def compare_scalar(key: str, ours: Any, value: Any, unit: Any, out: Mismatches) -> None:
    """A single-value object (dsmr_parser CosemObject)."""
    if value is None:
        # Normalization: dsmr_parser turns an empty "()" into None; we print "".
        if ours != "" or unit is not None:
            out.add(key, "value", ours, value)
    elif isinstance(value, datetime):
        compare_timestamp(key, "timestamp", ours, value, out)
    elif isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        if isinstance(ours, dict):
            if set(ours) != {"value", "unit"}:
                out.add(key, "shape", ours, value)
                return
            compare_number(key, "value", ours["value"], value, out)
            compare_unit(key, ours["unit"], unit, out)
        else:
            # A unitless value we print as a string, dsmr_parser as a number.
            compare_number(key, "value", ours, value, out)
            compare_unit(key, None, unit, out)
    elif isinstance(value, str):
        if ours != value:
            out.add(key, "value", ours, value)
        compare_unit(key, None, unit, out)
    else:
        out.add(key, "type", ours, value)


def compare_reading(key: str, ours: Any, ts: Any, value: Any, unit: Any, out: Mismatches) -> None:
    """A timestamped reading: M-Bus, Belgian month peak, DSMR 2/3 gas."""
    if not isinstance(ours, dict) or set(ours) != {"value", "unit", "timestamp"}:
        out.add(key, "shape", ours, (ts, value, unit))
        return
    compare_timestamp(key, "timestamp", ours["timestamp"], ts, out)
    if value is None:
        if ours["value"] is not None:
            out.add(key, "value", ours["value"], value)
    else:
        compare_number(key, "value", ours["value"], value, out)
    compare_unit(key, ours["unit"], unit, out)


def compare_log(key: str, ours: Any, count: int, entries: list, out: Mismatches) -> None:
    """A log: `entries` are (timestamp, value, unit) from dsmr_parser."""
    if not isinstance(ours, dict) or set(ours) != {"count", "entries"}:
        out.add(key, "shape", ours, entries)
        return
    if ours["count"] != count:
        out.add(key, "count", ours["count"], count)
    if len(ours["entries"]) != len(entries):
        out.add(key, "number of entries", len(ours["entries"]), len(entries))
        return
    for i, (mine, (ts, value, unit)) in enumerate(zip(ours["entries"], entries)):
        compare_reading(f"{key}[{i}]", mine, ts, value, unit, out)


def compare_object(key: str, ours: Any, theirs: Any, out: Mismatches) -> None:
    """Dispatch on the kind of object dsmr_parser made of the line."""
    if isinstance(theirs, list) and all(isinstance(p, MBusObjectPeak) for p in theirs):
        # Belgian 13-month peak history (MaxDemandParser): our entry timestamp is
        # when the peak occurred; the month-start timestamp is not in our JSON.
        entries = [(p.occurred, p.value, p.unit) for p in theirs]
        compare_log(key, ours, len(theirs), entries, out)
    elif isinstance(theirs, ProfileGenericObject):
        entries = [(b.datetime, b.value, b.unit) for b in theirs.buffer]
        compare_log(key, ours, theirs.buffer_length, entries, out)
    elif isinstance(theirs, MBusObject):
        compare_reading(key, ours, theirs.datetime, theirs.value, theirs.unit, out)
    elif isinstance(theirs, CosemObject):
        if len(theirs.values) != 1:
            out.add(key, "values (multi-value Cosem object, not compared)", ours, theirs.values)
            return
        compare_scalar(key, ours, theirs.value, theirs.unit, out)
    else:
        out.add(key, "unknown dsmr_parser object", ours, theirs)


def describe(obj: Any) -> str:
    """A readable form of a dsmr_parser object for mismatch reports."""
    if isinstance(obj, list):
        return "[" + ", ".join(describe(o) for o in obj) + "]"
    if isinstance(obj, MBusObjectPeak):
        return f"{obj.value!r} [{obj.unit}] occurred {obj.occurred} (month {obj.datetime})"
    if isinstance(obj, ProfileGenericObject):
        return f"log of {obj.buffer_length}: {describe(obj.buffer)}"
    if isinstance(obj, MBusObject):
        return f"{obj.value!r} [{obj.unit}] at {obj.datetime}"
    if isinstance(obj, CosemObject):
        return f"{obj.value!r} [{obj.unit}]"
    return repr(obj)


# ---------------------------------------------------------------------------- main


def check_case(binary: str, case: Case) -> bool:
    """Compare one sample; print its summary and details. True when all equal."""
    out = Mismatches()
    try:
        ours = run_ours(binary, case)
    except RuntimeError as err:
        print(f"{case.file}: our parser failed: {err}")
        return False
    try:
        parsed, failed = run_dsmr_parser(case)
    except Exception as err:  # CRC, decryption: our sample must pass dsmr_parser
        print(f"{case.file}: dsmr_parser ({case.spec_name}) failed: {type(err).__name__}: {err}")
        return False
    objects = ours["objects"]
    for line in failed:
        out.note(f"dsmr_parser could not parse {line}")
    for item in parsed:
        if item.key not in objects:
            out.add(item.key, f"missing in ours ({item.name})", None, describe(item.obj))
            continue
        out.line = item.line
        compare_object(item.key, objects[item.key], item.obj, out)

    compared = len(parsed)
    print(f"{case.file}: {compared} objects compared, {len(out.items)} mismatches")
    print(f"  dsmr_parser spec {case.spec_name}", end="")
    only_ours = [k for k in objects if k not in {p.key for p in parsed}]
    print(f"; only in ours: {', '.join(only_ours)}" if only_ours else "")
    for note in out.notes:
        print(f"  NOTE {note}")
    for item in out.items:
        print(f"  MISMATCH {item}")
    if compared < case.min_objects:
        print(f"  MISMATCH only {compared} objects compared, expected at least {case.min_objects}")
        return False
    return not out.items


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    binary = argv[1]
    results = [check_case(binary, case) for case in CASES]
    covered = {c.file for c in CASES}
    # Every sample must be in CASES: a new sample needs its dsmr_parser spec here.
    for path in sorted(TELEGRAMS.iterdir()):
        if path.suffix in (".txt", ".bin") and path.name not in covered:
            print(f"{path.name}: MISMATCH no dsmr_parser specification chosen for this sample")
            results.append(False)
    failed = results.count(False)
    print(f"{len(results) - failed}/{len(results)} samples agree with dsmr_parser")
    return EXIT_OK if failed == 0 else EXIT_MISMATCH


if __name__ == "__main__":
    sys.exit(main(sys.argv))
