#!/usr/bin/env python3
"""net-snmp pass_persist script serving a .snmprec recording (OID|tag|value).

The recording is read again whenever its modification time changes, so a test
can change the device's state (a UPS going on battery) while snmpd runs.
Tags: 2 INTEGER, 4 OCTET STRING, 6 OBJECT IDENTIFIER, 64 IpAddress,
65 Counter32, 66 Gauge32, 67 TimeTicks, 70 Counter64.
"""
import os
import sys

TYPES = {"2": "integer", "4": "string", "6": "objectid", "64": "ipaddress",
         "65": "counter", "66": "gauge", "67": "timeticks", "70": "counter64"}

path = sys.argv[1]
mtime = None
rows = []  # [(oid tuple, oid text, type, value)], sorted


def load():
    global mtime, rows
    try:
        m = os.stat(path).st_mtime_ns
    except OSError:
        return
    if m == mtime:
        return
    out = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            oid, tag, value = line.split("|", 2)
            out.append((tuple(int(x) for x in oid.split(".")), "." + oid, TYPES[tag], value))
    out.sort()
    rows, mtime = out, m


def key(text):
    return tuple(int(x) for x in text.strip().strip(".").split(".") if x)


def answer(row):
    if row is None:
        print("NONE")
    else:
        print(row[1])
        print(row[2])
        print(row[3])


for line in sys.stdin:
    cmd = line.strip()
    if cmd == "PING":
        print("PONG")
    elif cmd in ("get", "getnext"):
        oid = key(sys.stdin.readline())
        load()
        if cmd == "get":
            answer(next((r for r in rows if r[0] == oid), None))
        else:
            answer(next((r for r in rows if r[0] > oid), None))
    elif cmd == "set":
        sys.stdin.readline()
        sys.stdin.readline()
        print("not-writable")
    elif cmd == "":
        break
    sys.stdout.flush()
