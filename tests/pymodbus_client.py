#!/usr/bin/env python3
"""pymodbus (PyPI) as a client of `p1lb run`, over Modbus RTU (a serial pty) or TCP.

Usage: pymodbus_client.py (rtu PORT | tcp HOST:PORT) UNIT DEFAULTS WRITES
  DEFAULTS: comma-separated expected values of registers 1010..1022.
  WRITES:   comma-separated ADDR:GOOD[:BAD] for every writable setting: GOOD is written
            and must read back; BAD (when given) must answer exception 03 and change
            nothing. The defaults are restored at the end.
Also reads all of 1000-1199 (in two requests: 125 + 75 registers, FC 03 allows 125) and
expects exception 02 for a read at 999.
Run from tests/rs485_pty.rs; exits 0 on success, prints the reason and exits 1 on
failure, exits 77 when pymodbus (or pyserial) is not installed.
"""

import inspect
import sys

try:
    from pymodbus.client import ModbusSerialClient, ModbusTcpClient
    import serial  # noqa: F401  (pymodbus's serial transport)
except ImportError:
    print("pymodbus / pyserial is not installed (pip install pymodbus pyserial)")
    sys.exit(77)


def unit_kw(fn, unit):
    """pymodbus >= 3.10 calls it device_id, older 3.x slave."""
    params = inspect.signature(fn).parameters
    return {"device_id": unit} if "device_id" in params else {"slave": unit}


class Fail(Exception):
    """A check that did not hold."""


def read(client, unit, start, count):
    """Holding registers, or Fail."""
    rr = client.read_holding_registers(start, count=count, **unit_kw(client.read_holding_registers, unit))
    if rr.isError():
        raise Fail(f"read {start}+{count}: {rr}")
    return rr.registers


def write(client, unit, address, value):
    """The reply of a single-register write."""
    return client.write_register(address, value, **unit_kw(client.write_register, unit))


def check(client, unit, defaults, writes):
    """Every check of the usage text, in order."""
    got = read(client, unit, 1000, 23)[10:23]
    if got != defaults:
        raise Fail(f"1010-1022: got {got}, expected {defaults}")
    for address, good, bad in writes:
        wr = write(client, unit, address, good)
        if wr.isError():
            raise Fail(f"write {address} = {good}: {wr}")
        if read(client, unit, address, 1) != [good]:
            raise Fail(f"read-back of {address} after writing {good}")
        if bad is not None:
            wr = write(client, unit, address, bad)
            if not wr.isError() or getattr(wr, "exception_code", None) != 3:
                raise Fail(f"write {address} = {bad}: expected exception 03, got {wr}")
            if read(client, unit, address, 1) != [good]:
                raise Fail(f"{address} changed by a refused write")
    everything = read(client, unit, 1000, 125) + read(client, unit, 1125, 75)
    if len(everything) != 200:
        raise Fail(f"1000-1199: {len(everything)} registers")
    rr = client.read_holding_registers(999, count=1, **unit_kw(client.read_holding_registers, unit))
    if not rr.isError() or getattr(rr, "exception_code", None) != 2:
        raise Fail(f"read 999: expected exception 02, got {rr}")
    # Restore the defaults (staged).
    restore = dict(zip(range(1010, 1023), defaults))
    for address, _, _ in writes:
        if address in restore:
            write(client, unit, address, restore[address])


def main():
    kind, where, unit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    defaults = [int(v) for v in sys.argv[4].split(",")]
    writes = []
    for spec in sys.argv[5].split(","):
        parts = [int(p) for p in spec.split(":")]
        writes.append((parts[0], parts[1], parts[2] if len(parts) > 2 else None))
    if kind == "rtu":
        client = ModbusSerialClient(
            where, baudrate=9600, bytesize=8, parity="N", stopbits=1, timeout=2, retries=1
        )
    else:
        host, port = where.rsplit(":", 1)
        client = ModbusTcpClient(host, port=int(port), timeout=2)
    if not client.connect():
        print(f"cannot connect to {where}")
        return 1
    try:
        check(client, unit, defaults, writes)
        print(f"pymodbus {kind}: ok ({len(writes)} settings written and read back)")
        return 0
    except Fail as e:
        print(f"pymodbus {kind}: {e}")
        return 1
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
