#!/usr/bin/env python3
"""Fills fuzz/seeds/<target>/ (git-ignored) with seeds made at run time from
the project's own test data and from ../shared/testdata beside the checkout
(read where it lies, never copied into the repository; SITEWATCH_SHARED_TESTDATA
names it for a checkout elsewhere, such as a git worktree). Safe to rerun: seeds
are named by their content's hash. The committed corpus is fuzz/corpus/ (see
fuzz/cmin.sh), what a run grows is fuzz/work/.

    python3 fuzz/seed.py            # all targets
    python3 fuzz/seed.py ipmi snmp  # some
"""

import glob
import hashlib
import json
import os
import struct
import sys

FUZZ = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(FUZZ)
SHARED = os.environ.get("SITEWATCH_SHARED_TESTDATA") or os.path.join(os.path.dirname(ROOT), "shared", "testdata")


def files(*patterns):
    out = []
    for p in patterns:
        out += sorted(glob.glob(os.path.join(ROOT, p), recursive=True))
        out += sorted(glob.glob(os.path.join(SHARED, p), recursive=True))
    return out


def read(path):
    with open(path, "rb") as f:
        return f.read()


def replay_records():
    for path in files("collector/tests/replay/*.jsonl"):
        if path.endswith(".expected.jsonl"):
            continue
        for line in read(path).splitlines():
            if line.strip():
                yield json.loads(line)


# --- BER, just enough for SNMP v1/v2c messages ---------------------------


def tlv(tag, body):
    n = len(body)
    if n < 0x80:
        head = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + head + body


def ber_int(v, tag=0x02):
    n = max(1, (v.bit_length() + 8) // 8)
    return tlv(tag, v.to_bytes(n, "big", signed=True))


def ber_oid(arcs):
    body = bytes([40 * arcs[0] + arcs[1]])
    for a in arcs[2:]:
        chunk = [a & 0x7F]
        a >>= 7
        while a:
            chunk.append(0x80 | (a & 0x7F))
            a >>= 7
        body += bytes(reversed(chunk))
    return tlv(0x06, body)


def oid(text):
    return [int(x) for x in text.strip(".").split(".")]


def varbind(o, value):
    return tlv(0x30, ber_oid(o) + value)


def message(version, community, pdu_tag, varbinds, request_id=1):
    pdu = tlv(pdu_tag, ber_int(request_id) + ber_int(0) + ber_int(0) + tlv(0x30, b"".join(varbinds)))
    return tlv(0x30, ber_int(version) + tlv(0x04, community) + pdu)


def snmp_seeds():
    seeds = []
    uptime = varbind(oid("1.3.6.1.2.1.1.3.0"), ber_int(12345, 0x43))
    profiles = files("firmware-config/snmp/*.toml")
    for i, path in enumerate(profiles):
        text = read(path).decode()
        oids = []
        for line in text.splitlines():
            line = line.strip()
            if "=" in line and line.split("=")[0].strip() in ("oid", "column", "trap"):
                value = line.split("=", 1)[1].split("#")[0].strip().strip('"')
                if value and value[0].isdigit() and value.count(".") >= 1:
                    oids.append(oid(value))
        selector_ber, selector_structured = bytes([2 * i]), bytes([2 * i + 1])
        for o in oids[:6]:
            trap = varbind(oid("1.3.6.1.6.3.1.1.4.1.0"), ber_oid(o))
            seeds.append(selector_ber + message(1, b"public", 0xA7, [uptime, trap]))
            seeds.append(selector_ber + message(1, b"public", 0xA2, [varbind(o + [0], ber_int(42))]))
        seeds.append(selector_ber + message(1, b"public", 0xA2, [varbind(o, ber_int(7)) for o in oids[:8]]))
        seeds.append(selector_structured + bytes(range(1, 64)))
    # A v1 trap: enterprise, agent address, generic, specific, time stamp.
    v1 = tlv(
        0xA4,
        ber_oid(oid("1.3.6.1.4.1.318")) + tlv(0x40, bytes([127, 0, 0, 1])) + ber_int(6) + ber_int(5)
        + tlv(0x43, b"\x01") + tlv(0x30, b""),
    )
    seeds.append(b"\x00" + tlv(0x30, ber_int(0) + tlv(0x04, b"public") + v1))
    return seeds


# --- MQTT ---------------------------------------------------------------


def remaining(n):
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def utf8(s):
    return struct.pack(">H", len(s)) + s


def packet(first, body):
    return bytes([first]) + remaining(len(body)) + body


def mqtt_seeds():
    seeds = []
    for level, v5 in ((4, False), (5, True)):
        props = b"\x00" if v5 else b""
        connect = packet(
            0x10,
            utf8(b"MQTT") + bytes([level, 0xC2]) + struct.pack(">H", 30) + props + utf8(b"dc1:web-01")
            + utf8(b"agent") + utf8(b"secret"),
        )
        will = packet(
            0x10,
            utf8(b"MQTT") + bytes([level, 0x2E]) + struct.pack(">H", 30) + props + utf8(b"dc1:web-01")
            + props + utf8(b"sitewatch/v1/dc1/web-01/state") + utf8(b'{"v":1,"status":"lost"}'),
        )
        publish = []
        for r in list(replay_records())[:8]:
            payload = json.dumps(r["payload"]).encode() if not isinstance(r["payload"], str) else r["payload"].encode()
            publish.append(packet(0x32, utf8(r["topic"].encode()) + b"\x00\x01" + props + payload))
        subscribe = packet(0x82, b"\x00\x02" + props + utf8(b"sitewatch/v1/#") + b"\x01")
        rest = [packet(0xC0, b""), packet(0x40, b"\x00\x01"), packet(0xA2, b"\x00\x03" + props + utf8(b"a/#"))]
        rest.append(packet(0xE0, b"\x00\x00" if v5 else b""))
        selector = bytes([4 if v5 else 2 | 0x80])  # 4096 bytes, split mid-stream
        selector = bytes([(1 if v5 else 0) | (2 << 1) | (16 << 3)])
        for p in [connect, will] + publish:
            seeds.append(selector + p)
        seeds.append(selector + connect + b"".join(publish) + subscribe + b"".join(rest))
    return seeds


# --- Modbus, IPMI -------------------------------------------------------


def modbus_seeds():
    shipped = len(files("firmware-config/profiles/*/*.toml"))
    seeds = [bytes([i, 0]) + bytes(range(256)) for i in range(shipped)]
    seeds += [bytes([i, 3, 40, 4]) + bytes(range(255, 0, -1)) for i in range(shipped)]
    # A written profile: four points of assorted types, then the answers.
    seeds.append(bytes([0x80, 1, 60, 0, 200, 8, 3]) + bytes([3, 0, 1, 1, 0, 2, 0, 5, 0x13, 0, 8, 0x11, 2]) * 3 + bytes(200))
    return seeds


def ipmi_seeds():
    def full_record(name, sensor_type, reading_type, units):
        body = bytes([0x20, 0x00, 0x01, 0x07, 0x01, 0x7F, 0x68, sensor_type, reading_type]) + bytes(6)
        body += bytes(units) + bytes([0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00])
        body += bytes([0x00, 0x00, 0x00, 0x00, 0xFF, 0x00]) + bytes(6) + bytes(5)
        body += bytes([0xC0 | len(name)]) + name
        return bytes([0x03, 0x00, 0x51, 0x01, len(body)]) + body

    def compact(name, sensor_type, reading_type, share):
        body = bytes([0x20, 0x00, 0x02, 0x0A, 0x01, 0x7F, 0x68, sensor_type, reading_type]) + bytes(6)
        body += bytes([0x00, 0x00, 0x00, share, 0x00]) + bytes(11)
        body += bytes([0xC0 | len(name)]) + name
        return bytes([0x04, 0x00, 0x51, 0x02, len(body)]) + body

    reading = bytes([0x00, 0x40, 0xC0, 0x00, 0x00])
    records = [
        full_record(b"MBTemp", 0x01, 0x01, [0x00, 0x01, 0x00]),
        full_record(b"Inlet Temp", 0x01, 0x01, [0x80, 0x01, 0x00]),
        full_record(b"FAN1", 0x04, 0x01, [0x00, 0x12, 0x00]),
        full_record(b"12V", 0x02, 0x01, [0x00, 0x04, 0x00]),
        compact(b"PS", 0x08, 0x6F, 0x02),
        compact(b"Drive", 0x0D, 0x6F, 0x00),
    ]
    seeds = [b"\x00" + r + reading for r in records]
    # Get SEL Entry answers: next id, then a system event record.
    sel = struct.pack("<HHBI", 2, 1, 0x02, 1700000000) + bytes([0x20, 0x00, 0x04, 0x01, 0x01, 0x01, 0x52, 0x00, 0x00])
    seeds.append(b"\x00" + sel)
    seeds.append(b"\x00" + bytes([0x51, 0x02, 0x00, 0x00, 0x00]) + struct.pack("<II", 1, 2) + bytes([0x0F]))
    seeds.append(b"\x00" + bytes([0x01, 0x10, 0x40, 0x70]))  # chassis status
    seeds.append(b"\x00" + bytes([0xDC]) + struct.pack("<HHHHII", 250, 100, 400, 240, 1700000000, 1000) + b"\x40")
    return seeds


def nut_seeds():
    """upsd answers and client commands as Debian's upsd 2.8 and upsmon send them."""
    answers = (
        b"BEGIN LIST UPS\nUPS ups1 \"test UPS\"\nEND LIST UPS\n"
        b"BEGIN LIST VAR ups1\nVAR ups1 battery.charge \"100\"\nVAR ups1 battery.runtime \"1800\"\n"
        b"VAR ups1 ups.status \"OB LB\"\nVAR ups1 ups.load \"23\"\nVAR ups1 input.voltage \"230.4\"\n"
        b"VAR ups1 device.model \"Smart \\\"1500\\\"\"\nEND LIST VAR ups1\n"
    )
    commands = (
        b"VER\nNETVER\nUSERNAME upsmon\nPASSWORD \"a secret\"\nLOGIN ups1\nPRIMARY ups1\n"
        b"GET VAR ups1 ups.status\nGET NUMLOGINS ups1\nGET UPSDESC ups1\nLIST VAR ups1\nFSD ups1\nLOGOUT\n"
    )
    errors = b"ERR ACCESS-DENIED\nERR DATA-STALE\nERR GREMLINS\nOK Goodbye\nVAR ups1 x \"cut"
    return [answers, commands, errors]


# --- Redfish resources, written from the DMTF schemas ---------------------


def redfish_seeds():
    ok = {"State": "Enabled", "Health": "OK"}
    docs = [
        {"@odata.type": "#ServiceRoot.v1_17_0.ServiceRoot", "Id": "RootService", "RedfishVersion": "1.17.0",
         "ProtocolFeaturesSupported": {"ExpandQuery": {"ExpandAll": True, "Levels": True, "MaxLevels": 3, "NoLinks": True}},
         "Chassis": {"@odata.id": "/redfish/v1/Chassis"}},
        {"@odata.type": "#Sensor.v1_9_0.Sensor", "Id": "Intake", "Name": "Inlet", "ReadingType": "Temperature",
         "ReadingUnits": "Cel", "Reading": 24.5, "PhysicalContext": "Intake", "Status": ok,
         "Thresholds": {"UpperCaution": {"Reading": 35}, "UpperCritical": {"Reading": 40}, "LowerCritical": {"Reading": 5}}},
        {"@odata.type": "#Sensor.v1_9_0.Sensor", "Id": "PS1Power", "ReadingType": "Power", "ReadingUnits": "W",
         "Reading": 312.0, "PhysicalContext": "PowerSupply", "Status": {"State": "Enabled", "Health": "Warning"}},
        {"@odata.type": "#Sensor.v1_9_0.Sensor", "Id": "Absent", "ReadingType": "Voltage", "Reading": None,
         "Status": {"State": "Absent"}},
        {"@odata.type": "#PowerSupply.v1_6_0.PowerSupply", "Id": "Bay1", "Name": "PSU 1",
         "Status": {"State": "Enabled", "Health": "Critical"}, "PowerCapacityWatts": 800,
         "Metrics": {"@odata.id": "/redfish/v1/Chassis/1U/PowerSubsystem/PowerSupplies/Bay1/Metrics"}},
        {"@odata.type": "#PowerSupplyMetrics.v1_1_0.PowerSupplyMetrics", "Id": "Metrics",
         "InputVoltage": {"Reading": 230.2}, "InputPowerWatts": {"Reading": 330}, "OutputPowerWatts": {"Reading": 300}},
        {"@odata.type": "#Fan.v1_5_0.Fan", "Id": "Fan1", "Status": ok,
         "SpeedPercent": {"Reading": 45, "SpeedRPM": 6200}},
        {"@odata.type": "#Thermal.v1_7_0.Thermal", "Id": "Thermal",
         "Temperatures": [{"Name": "Inlet", "ReadingCelsius": 23, "PhysicalContext": "Intake",
                           "UpperThresholdCritical": 42, "Status": ok}],
         "Fans": [{"Name": "Fan 1", "Reading": 5200, "ReadingUnits": "RPM", "Status": ok}],
         "Redundancy": [{"Name": "Fans", "Mode": "N+m", "Status": ok}]},
        {"@odata.type": "#Power.v1_7_0.Power", "Id": "Power",
         "PowerSupplies": [{"Name": "PSU 2", "Status": {"State": "Enabled", "Health": "OK"}, "LineInputVoltage": 229}],
         "Voltages": [{"Name": "12V", "ReadingVolts": 12.1, "Status": ok}],
         "PowerControl": [{"PowerConsumedWatts": 410}]},
        {"@odata.type": "#Outlet.v1_4_0.Outlet", "Id": "A1", "PowerState": "On", "Status": ok,
         "CurrentAmps": {"Reading": 1.2}, "Voltage": {"Reading": 230}, "PowerWatts": {"Reading": 270},
         "EnergykWh": {"Reading": 1234.5}},
        {"@odata.type": "#Circuit.v1_7_0.Circuit", "Id": "Mains", "CircuitType": "Mains", "BreakerState": "Normal",
         "Status": ok, "PolyPhaseCurrent": {"Line1": {"Reading": 10.1}, "Line2": {"Reading": 9.8}},
         "PolyPhaseVoltage": {"Line1ToNeutral": {"Reading": 231}}},
        {"@odata.type": "#Pump.v1_1_0.Pump", "Id": "1", "Status": ok, "PumpSpeedPercent": {"Reading": 60}},
        {"@odata.type": "#LeakDetector.v1_3_0.LeakDetector", "Id": "Tray", "DetectorState": "Critical",
         "Status": {"State": "Enabled", "Health": "Critical"}},
        {"@odata.type": "#SensorCollection.SensorCollection", "Members@odata.count": 1,
         "Members": [{"@odata.id": "/redfish/v1/Chassis/1U/Sensors/Intake", "ReadingType": "Temperature",
                      "Reading": 22, "PhysicalContext": "Intake", "Status": ok}]},
    ]
    return [json.dumps(d).encode() for d in docs]


# --- targets ------------------------------------------------------------


def seeds_for(target):
    if target == "wire_decode":
        return [r["topic"].encode() + b"\x00" + (r["payload"].encode() if isinstance(r["payload"], str) else json.dumps(r["payload"]).encode()) for r in replay_records()]
    if target == "replay_line":
        recordings = [read(p) for p in files("collector/tests/replay/*.jsonl") if not p.endswith(".expected.jsonl")]
        return [line for r in recordings for line in r.splitlines() if line.strip()] + recordings
    if target == "replay_run":
        return [read(p) for p in files("collector/tests/replay/*.jsonl") if not p.endswith(".expected.jsonl")]
    if target == "smartctl":
        return [read(p) for p in files("smartctl-parser/tests/fixtures/*.json", "agent/tests/smart/fixtures/*.json", "smartctl/*.json")]
    if target == "modbus":
        return modbus_seeds()
    if target == "ipmi":
        return ipmi_seeds()
    if target == "snmp":
        return snmp_seeds()
    if target == "mqtt_codec":
        return mqtt_seeds()
    if target == "nut_line":
        return nut_seeds()
    if target == "config_agent":
        return [read(p) for p in files("agent/examples/*.toml", "packaging/config/agent.toml", "firmware-config/gateway/*.toml", "agent/tests/**/*.toml")]
    if target == "config_collector":
        return [read(p) for p in files("collector/config/*.toml", "packaging/config/collector*.toml", "collector/tests/replay/*.toml", "collector/tests/**/*web*.yml", "packaging/**/web*.yml")]
    if target == "redfish":
        # Every resource of DMTF's mockups as served, and resources of each kind
        # the mapping reads, written here from the Redfish schemas.
        return [read(p) for p in files("redfish/dmtf-mockups-2025.4/*/**/index.json")] + redfish_seeds()
    if target == "profiles_toml":
        return [read(p) for p in files("firmware-config/profiles/*/*.toml", "firmware-config/snmp/*.toml", "modbus/*.toml")]
    raise SystemExit(f"unknown target {target}")


TARGETS = ["wire_decode", "replay_line", "replay_run", "smartctl", "modbus", "ipmi", "snmp", "mqtt_codec", "nut_line", "redfish", "config_agent", "config_collector", "profiles_toml"]


def main():
    if not os.path.isdir(SHARED):
        print(
            f"SKIPPED: the seeds from ../shared/testdata ({SHARED} not present); "
            "seeding from the repository alone",
            file=sys.stderr,
        )
    for target in sys.argv[1:] or TARGETS:
        out = os.path.join(FUZZ, "seeds", target)
        os.makedirs(out, exist_ok=True)
        seeds = seeds_for(target)
        for s in seeds:
            with open(os.path.join(out, hashlib.sha1(s).hexdigest()), "wb") as f:
                f.write(s)
        print(f"{target}: {len(seeds)} seeds in {os.path.relpath(out, ROOT)}")


if __name__ == "__main__":
    main()
