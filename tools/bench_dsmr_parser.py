#!/usr/bin/env python3
"""Throughput of Home Assistant's P1 parser, dsmr_parser, on the sample corpus.

Usage: bench_dsmr_parser.py TELEGRAM_DIR SECONDS

Measures what p1lb's reader does for the same bytes: framing (TelegramBuffer), CRC
check where the dialect has one, and parsing every object (TelegramParser with the
telegram specification that fits each sample). Prints one line:
    dsmr_parser MB/s <float> telegrams/s <float>
Exit 77 when dsmr_parser is not installed.
"""
import os
import sys
import time

try:
    from dsmr_parser import telegram_specifications as specs
    from dsmr_parser.clients.telegram_buffer import TelegramBuffer
    from dsmr_parser.parsers import TelegramParser
except ImportError:
    print("dsmr_parser not installed (pip install dsmr-parser==1.11.2)", file=sys.stderr)
    sys.exit(77)

# File-name prefix -> the specification dsmr_parser uses for that meter.
SPECS = [
    ("be-", specs.BELGIUM_FLUVIUS),
    ("de-easymeter", specs.Q3D),
    ("lu-smarty", specs.LUXEMBOURG_SMARTY),
    ("nl-dsmr22", specs.V2_2),
    ("nl-dsmr30", specs.V3),
    ("nl-dsmr42", specs.V4),
    ("nl-", specs.V5),
]


def spec_for(name):
    """The telegram specification for a sample file name."""
    for prefix, spec in SPECS:
        if name.startswith(prefix):
            return spec
    raise ValueError(name)


def main():
    folder, seconds = sys.argv[1], float(sys.argv[2])
    samples = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".txt"):
            with open(os.path.join(folder, name), "rb") as f:
                data = f.read().decode("ascii", errors="replace")
            samples.append((TelegramParser(spec_for(name)), data))
    total_bytes = sum(len(d) for _, d in samples)
    rounds = 0
    telegrams = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for parser, data in samples:
            buf = TelegramBuffer()
            buf.append(data)
            for telegram in buf.get_all():
                parser.parse(telegram)
                telegrams += 1
        rounds += 1
    elapsed = time.perf_counter() - start
    mbps = rounds * total_bytes / elapsed / 1e6
    print(f"dsmr_parser MB/s {mbps:.4f} telegrams/s {telegrams / elapsed:.1f}")


if __name__ == "__main__":
    main()
