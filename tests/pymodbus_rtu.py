#!/usr/bin/env python3
"""pymodbus (PyPI) as an RTU client of `p1lb run` (server role) over a serial pty.

Usage: pymodbus_rtu.py PORT UNIT DEFAULTS
  DEFAULTS: comma-separated expected values of registers 1010..1022.
Reads 1000-1022 (checks 1010-1022 against DEFAULTS), writes 1013 = 2 and reads it
back, writes 1013 = 300 (out of range) and expects exception 03, restores 1013.
Run from tests/rs485_pty.rs; exits 0 on success, prints the reason and exits 1 on
failure, exits 77 when pymodbus is not installed.
"""

import sys

try:
    from pymodbus.client import ModbusSerialClient
except ImportError:
    print("pymodbus is not installed (pip install pymodbus)")
    sys.exit(77)


def unit_kw(fn, unit):
    """pymodbus >= 3.10 calls it device_id, older 3.x slave."""
    import inspect

    params = inspect.signature(fn).parameters
    return {"device_id": unit} if "device_id" in params else {"slave": unit}


def main():
    port, unit, defaults = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    expected = [int(v) for v in defaults.split(",")]
    client = ModbusSerialClient(
        port, baudrate=9600, bytesize=8, parity="N", stopbits=1, timeout=2, retries=1
    )
    if not client.connect():
        print(f"cannot open {port}")
        return 1
    try:
        kw = unit_kw(client.read_holding_registers, unit)
        rr = client.read_holding_registers(1000, count=23, **kw)
        if rr.isError():
            print(f"read 1000-1022 failed: {rr}")
            return 1
        got = rr.registers[10:23]
        if got != expected:
            print(f"1010-1022: got {got}, expected {expected}")
            return 1
        kw = unit_kw(client.write_register, unit)
        wr = client.write_register(1013, 2, **kw)
        if wr.isError():
            print(f"write 1013 = 2 failed: {wr}")
            return 1
        rr = client.read_holding_registers(1013, count=1, **unit_kw(client.read_holding_registers, unit))
        if rr.isError() or rr.registers != [2]:
            print(f"read-back of 1013: {rr}")
            return 1
        wr = client.write_register(1013, 300, **kw)
        if not wr.isError() or getattr(wr, "exception_code", None) != 3:
            print(f"write 1013 = 300: expected exception 03, got {wr}")
            return 1
        client.write_register(1013, expected[3], **kw)
        print("pymodbus RTU: ok")
        return 0
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
