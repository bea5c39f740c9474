#!/usr/bin/env python3
"""A UDP shim in front of a real SNMP agent that misbehaves like field devices.

--mode drop-bulk: GETBULK requests (PDU tag 0xA5) get no answer, as agents
                  that do not implement it or break on it; everything else
                  is relayed.
--mode corrupt:   every answer is cut short (an undecodable datagram).
--mode silent:    nothing is ever answered.
--mode relay:     everything is relayed (with --count-file: the number of
                  requests relayed so far is written there after each one).

Prints "ready" once listening. SNMP messages are BER: SEQUENCE { version,
community, PDU }; the PDU's tag is found by skipping the first two fields.
"""
import argparse
import os
import select
import socket
import sys


def tlv_end(data, i):
    """Index after the TLV starting at i."""
    length = data[i + 1]
    if length & 0x80:
        n = length & 0x7F
        return i + 2 + n + int.from_bytes(data[i + 2:i + 2 + n], "big")
    return i + 2 + length


def pdu_tag(data):
    try:
        i = 2 if not data[1] & 0x80 else 2 + (data[1] & 0x7F)
        i = tlv_end(data, i)      # version
        i = tlv_end(data, i)      # community
        return data[i]
    except IndexError:
        return None


p = argparse.ArgumentParser()
p.add_argument("--listen", type=int, required=True)
p.add_argument("--upstream", type=int, required=True)
p.add_argument("--mode", required=True, choices=["drop-bulk", "corrupt", "silent", "relay"])
p.add_argument("--count-file")
a = p.parse_args()

front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
front.bind(("127.0.0.1", a.listen))
back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
back.bind(("127.0.0.1", 0))
print("ready", flush=True)
# Answers go to the last sender: one client at a time.
client = None
relayed = 0
while True:
    readable, _, _ = select.select([front, back], [], [])
    for s in readable:
        data, addr = s.recvfrom(65535)
        if s is front:
            if a.mode == "silent":
                continue
            if a.mode == "drop-bulk" and pdu_tag(data) == 0xA5:
                continue
            client = addr
            back.sendto(data, ("127.0.0.1", a.upstream))
            relayed += 1
            if a.count_file:
                with open(a.count_file + ".tmp", "w") as f:
                    f.write(str(relayed))
                os.replace(a.count_file + ".tmp", a.count_file)
        elif client is not None:
            if a.mode == "corrupt":
                data = data[: len(data) // 2]
            front.sendto(data, client)
