#!/usr/bin/env python3
"""A pymodbus server holding register images: the device the agent reads.

usage: modbus_server.py (--tcp HOST:PORT | --rtu-tcp HOST:PORT | --rtu PATH) IMAGE_JSON

IMAGE_JSON: {"UNIT": {"holding": {"ADDR": VALUE, ...}, "input": {...},
"coil": {...}, "discrete": {...}}, ...}, 0-based protocol addresses. Only the
listed addresses exist: a read touching any other one is answered with
exception 2 (illegal data address), as a strict device does. Units not
listed never answer (a dead device on the bus).
"""
import asyncio
import json
import sys

from pymodbus.datastore import ModbusServerContext, ModbusSparseDataBlock

try:  # pymodbus >= 3.10
    from pymodbus.datastore import ModbusDeviceContext as DeviceContext
    UNITS_KW = "devices"
except ImportError:  # pymodbus 3.6 .. 3.9
    from pymodbus.datastore import ModbusSlaveContext as DeviceContext
    UNITS_KW = "slaves"
from pymodbus import FramerType
from pymodbus.server import StartAsyncSerialServer, StartAsyncTcpServer

import inspect

from pymodbus.server import ModbusTcpServer

# Before 3.16 pymodbus's device context added 1 to every request address
# before looking it up in a data block (the Modicon 1-based convention); the
# 3.16 context (built on SimDevice) looks up the protocol address itself.
SHIFT = 0 if hasattr(DeviceContext(), "simdevice") else 1
# A unit the server does not hold must stay silent, as a dead device does.
_params = inspect.signature(ModbusTcpServer.__init__).parameters
IGNORE_KW = "ignore_missing_devices" if "ignore_missing_devices" in _params else "ignore_missing_slaves"


try:  # pymodbus 3.16: an unknown unit raises KeyError (answered with exception
    # 4) instead of NoSuchIdException (which the server can ignore). Make it
    # the latter so that a unit the server does not hold stays silent.
    from pymodbus.exceptions import NoSuchIdException
    from pymodbus.simulator.simcore import SimCore

    def _get_device(self, device_id):
        if device_id in self.devices:
            return self.devices[device_id]
        raise NoSuchIdException(f"no unit {device_id}")

    SimCore._SimCore__get_device = _get_device
except ImportError:
    pass


def block(table):
    values = {int(a) + SHIFT: int(v) for a, v in table.items()}
    # None: pymodbus then maps a single register at protocol address 0.
    return ModbusSparseDataBlock(values) if values else None


def context(image):
    units = {}
    for unit, tables in image.items():
        units[int(unit)] = DeviceContext(
            co=block(tables.get("coil", {})),
            di=block(tables.get("discrete", {})),
            hr=block(tables.get("holding", {})),
            ir=block(tables.get("input", {})),
        )
    return ModbusServerContext(**{UNITS_KW: units, "single": False})


async def main():
    mode, where, path = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(path) as f:
        ctx = context(json.load(f))
    if mode in ("--tcp", "--rtu-tcp"):
        host, port = where.rsplit(":", 1)
        framer = FramerType.SOCKET if mode == "--tcp" else FramerType.RTU
        await StartAsyncTcpServer(
            context=ctx, address=(host, int(port)), framer=framer, **{IGNORE_KW: True}
        )
    else:
        await StartAsyncSerialServer(
            context=ctx, port=where, framer=FramerType.RTU, baudrate=9600, **{IGNORE_KW: True}
        )


if __name__ == "__main__":
    asyncio.run(main())
