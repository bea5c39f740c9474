#!/usr/bin/env python3
"""Reads blocks from a Modbus TCP server with pymodbus: an independent peer.

usage: modbus_read.py HOST PORT UNIT TIMEOUT TABLE:ADDRESS:COUNT...
       modbus_read.py --rtu PATH UNIT TIMEOUT TABLE:ADDRESS:COUNT...

Prints one JSON object: for each block, its registers (or 0/1 bits), or
{"exception": code}, or {"error": "..."} when nothing came back.
"""
import inspect
import json
import sys

from pymodbus.client import ModbusSerialClient, ModbusTcpClient


def main():
    unit, timeout = int(sys.argv[3]), float(sys.argv[4])
    if sys.argv[1] == "--rtu":
        from pymodbus import FramerType

        client = ModbusSerialClient(
            port=sys.argv[2], framer=FramerType.RTU, baudrate=9600, timeout=timeout, retries=0
        )
    else:
        client = ModbusTcpClient(sys.argv[1], port=int(sys.argv[2]), timeout=timeout, retries=0)
    if not client.connect():
        print(json.dumps({"connect": "failed"}))
        return 1
    # pymodbus 3.10 renamed `slave` to `device_id`.
    params = inspect.signature(client.read_holding_registers).parameters
    unit_kw = "device_id" if "device_id" in params else "slave"
    readers = {
        "coil": client.read_coils,
        "discrete": client.read_discrete_inputs,
        "holding": client.read_holding_registers,
        "input": client.read_input_registers,
    }
    out = {}
    for spec in sys.argv[5:]:
        table, address, count = spec.split(":")
        try:
            rr = readers[table](int(address), count=int(count), **{unit_kw: unit})
        except Exception as exc:  # a timeout surfaces as ModbusIOException
            out[spec] = {"error": type(exc).__name__}
            continue
        if rr.isError():
            code = getattr(rr, "exception_code", None)
            out[spec] = {"exception": code} if code else {"error": str(rr)}
        elif table in ("coil", "discrete"):
            out[spec] = [int(b) for b in rr.bits[: int(count)]]
        else:
            out[spec] = list(rr.registers)
    client.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
