#!/usr/bin/env python3
"""Writes the replay files of this folder: <name>.jsonl (and <name>.toml when the
scenario needs configuration). Deterministic: run it again, get the same bytes.

    python3 collector/tests/replay/generate.py

The expected timelines (<name>.expected.jsonl) are written by hand, each reasoned
from the engine's rules (see README.md here): this script never writes them.

Every agent behaves like sitewatch-agent: a retained birth, then a readings batch
every 5 s (its heartbeat) with its sensors, `seq` +1 per batch; a will (retained
offline/lost) when it dies, a retained offline/shutdown when it stops cleanly.
Timestamps: the recording starts at T0 (2025-11-25T14:13:20Z) and `ts` = T0 + t_ms.
"""

import json
import os

T0 = 1_764_080_000_000
HERE = os.path.dirname(os.path.abspath(__file__))
INTERVAL = 5000


def r(src, dev, q, value, state="ok", name=None, labels=None):
    out = {"src": src, "dev": dev, "name": name or dev, "q": q, "value": value, "state": state}
    if labels:
        out["labels"] = labels
    return out


class Agent:
    def __init__(self, site, host, sensors=None, labels=None, sources=None, phase=0):
        self.site, self.host = site, host
        # sensors(t_ms) -> list of readings at that time
        self.sensors = sensors or (lambda t: [])
        self.labels = labels or {}
        self.sources = sources or {"host": INTERVAL, "ipmi": INTERVAL, "modbus": INTERVAL,
                                   "net": INTERVAL, "smart": 600000}
        self.phase = phase  # offset of its heartbeat within the 5 s, ms
        self.seq = 0
        self.boot = f"{host}-1"

    def topic(self, kind):
        return f"sitewatch/v1/{self.site}/{self.host}/{kind}"

    def birth(self, t, retain=True, boot=None):
        if boot:
            self.boot, self.seq = boot, 0
        payload = {"v": 1, "status": "online", "ts": T0 + t, "boot": self.boot,
                   "agent": "sitewatch-agent/0.1.0", "interval_ms": INTERVAL,
                   "sources": self.sources}
        if self.labels:
            payload["labels"] = self.labels
        return (t, self.topic("state"), retain, payload)

    def batch(self, t):
        self.seq += 1
        return (t, self.topic("readings"), False,
                {"v": 1, "seq": self.seq, "ts": T0 + t, "readings": self.sensors(t)})

    def will(self, t):
        return (t, self.topic("state"), True, {"v": 1, "status": "offline", "reason": "lost"})

    def shutdown(self, t):
        return (t, self.topic("state"), True,
                {"v": 1, "status": "offline", "reason": "shutdown", "ts": T0 + t})

    def maintenance(self, t):
        return (t, self.topic("state"), True,
                {"v": 1, "status": "maintenance", "ts": T0 + t, "boot": self.boot,
                 "interval_ms": INTERVAL, "sources": self.sources})

    def heartbeats(self, start, end):
        """A batch every 5 s in [start, end)."""
        out = []
        t = start + self.phase
        while t < end:
            out.append(self.batch(t))
            t += INTERVAL
        return out


def write(name, records, config=None):
    # Stable sort: records of one instant keep the order they were made in.
    records = sorted(records, key=lambda x: x[0])
    with open(os.path.join(HERE, f"{name}.jsonl"), "w") as f:
        for t, topic, retain, payload in records:
            line = {"t_ms": t, "topic": topic}
            if retain:
                line["retain"] = True
            line["payload"] = payload
            f.write(json.dumps(line, separators=(",", ":")) + "\n")
    toml = os.path.join(HERE, f"{name}.toml")
    if config:
        with open(toml, "w") as f:
            f.write(config)
    elif os.path.exists(toml):
        os.remove(toml)


def site(names, site_name="bj1", sensors=None, labels=None):
    """Agents of one site, their heartbeats spread over the 5 s."""
    sensors = sensors or {}
    return [Agent(site_name, h, sensors.get(h), (labels or {}).get(h), phase=100 * i)
            for i, h in enumerate(names)]


def alive(agents, start, end, retain_birth=True):
    out = []
    for a in agents:
        out.append(a.birth(start, retain_birth))
        out += a.heartbeats(start + 1000, end)
    return out


def step(t, before, after, at):
    return after if t >= at else before


# --- one per cause ---------------------------------------------------------------

def host_resources():
    # web-01's CPU at 95 % from 10 s to 400 s; web-02 idles. Memory and a
    # filesystem stay low on both.
    def load(host):
        def sensors(t):
            cpu = 0.95 if host == "web-01" and 10_000 <= t < 400_000 else 0.20
            return [r("host", "cpu", "cpu_usage_ratio", cpu),
                    r("host", "memory", "memory_usage_ratio", 0.40),
                    r("host", "/", "filesystem_usage_ratio", 0.50)]
        return sensors
    agents = site(["web-01", "web-02"], sensors={h: load(h) for h in ["web-01", "web-02"]})
    write("host_resources", alive(agents, 0, 460_000))


def host_hardware():
    # web-01's PSU2 loses its input from 30 s to 90 s.
    def psu(host):
        def sensors(t):
            failed = host == "web-01" and 30_000 <= t < 90_000
            return [r("ipmi", "bmc", "psu_ok", 0 if failed else 1,
                      "critical" if failed else "ok", name="PSU2 Status"),
                    r("ipmi", "bmc", "fan_speed_rpm", 6000, name="FAN1")]
        return sensors
    names = ["web-01", "web-02", "web-03"]
    write("host_hardware", alive(site(names, sensors={h: psu(h) for h in names}), 0, 160_000))


def storage():
    # db-01's sda fails SMART at 20 s; its sdb grows pending sectors at 40 s.
    def disks(t):
        return [r("smart", "sda", "disk_smart_passed", 0 if t >= 20_000 else 1),
                r("smart", "sdb", "disk_smart_passed", 1),
                r("smart", "sdb", "disk_pending_sectors", 8 if t >= 40_000 else 0)]
    agents = site(["db-01", "web-01"], sensors={"db-01": disks})
    write("storage", alive(agents, 0, 90_000))


def network_device():
    # Both agents probe the switch sw-a1 and the router rt-1; sw-a1 stops answering
    # from 30 s to 60 s. rt-1 stays up.
    def probes(t):
        sw = 0 if 30_000 <= t < 60_000 else 1
        return [r("net", "sw-a1", "probe_up", sw, labels={"role": "switch"}),
                r("net", "rt-1", "probe_up", 1, labels={"role": "router"})]
    names = ["web-01", "web-02"]
    write("network_device", alive(site(names, sensors={h: probes for h in names}), 0, 130_000))


def power():
    # Mains lost at 40 s: the UPS runs on battery, and the site has no generator.
    # Mains back at 100 s.
    def ups(t):
        out = 40_000 <= t < 100_000
        return [r("modbus", "ats", "mains_available", 0 if out else 1),
                r("modbus", "ups-a", "ups_on_battery", 1 if out else 0,
                  "critical" if out else "ok", name="on_battery")]
    agents = site(["gw-01", "web-01", "web-02"], sensors={"gw-01": ups})
    write("power", alive(agents, 0, 170_000))


def inlets(hot_hosts, temp_hot, start, end, state_hot="ok", cold=24.0):
    def make(host):
        def sensors(t):
            hot = host in hot_hosts and start <= t < end
            return [r("ipmi", "bmc", "inlet_temperature_celsius", temp_hot if hot else cold,
                      state_hot if hot else "ok", name="Inlet Temp")]
        return sensors
    return make


def cooling():
    # The whole room heats up: every inlet at 34 °C from 30 s to 100 s.
    names = ["web-01", "web-02", "web-03", "web-04"]
    make = inlets(set(names), 34.0, 30_000, 100_000, state_hot="warning")
    write("cooling", alive(site(names, sensors={h: make(h) for h in names}), 0, 170_000))


def network():
    # Three of bj1's four agents drop within 2 s at 60 s (their wills), and come
    # back together at 150 s. gw-01, on another uplink, stays.
    names = ["gw-01", "web-01", "web-02", "web-03"]
    agents = site(names)
    recs = []
    for a in agents:
        recs.append(a.birth(0))
        if a.host == "gw-01":
            recs += a.heartbeats(1000, 220_000)
        else:
            recs += a.heartbeats(1000, 58_000)
            recs.append(a.will(60_000 + 1000 * (names.index(a.host) - 1)))
            recs.append(a.birth(150_000, boot=f"{a.host}-2"))
            recs += a.heartbeats(151_000, 220_000)
    write("network", recs)


def region():
    # bj1 and bj2, both in cn-north, lose mains at 40 s with no generator; mains
    # come back at 100 s.
    def ups(t):
        out = 40_000 <= t < 100_000
        return [r("modbus", "ups-a", "ups_on_battery", 1 if out else 0, name="on_battery")]
    recs = []
    for s in ["bj1", "bj2"]:
        recs += alive(site(["gw-01", "web-01"], site_name=s, sensors={"gw-01": ups}), 0, 170_000)
    config = ('[signals.sites.bj1]\nregion = "cn-north"\n\n'
              '[signals.sites.bj2]\nregion = "cn-north"\n')
    write("region", recs, config)


# --- false-positive traps --------------------------------------------------------

def trap_one_host_lost():
    # One of four agents dies at 60 s (its will) and is back at 120 s: an L2 for
    # that host, not an L3 for the site.
    names = ["web-01", "web-02", "web-03", "web-04"]
    agents = site(names)
    recs = []
    for a in agents:
        recs.append(a.birth(0))
        if a.host == "web-02":
            recs += a.heartbeats(1000, 58_000)
            recs.append(a.will(60_000))
            recs.append(a.birth(120_000, boot="web-02-2"))
            recs += a.heartbeats(121_000, 190_000)
        else:
            recs += a.heartbeats(1000, 190_000)
    write("trap-one-host-lost", recs)


def trap_planned_shutdown():
    # Three of four agents stop cleanly within 2 s (a planned shutdown of the
    # rack): no signal at all.
    names = ["gw-01", "web-01", "web-02", "web-03"]
    agents = site(names)
    recs = []
    for i, a in enumerate(agents):
        recs.append(a.birth(0))
        if a.host == "gw-01":
            recs += a.heartbeats(1000, 180_000)
        else:
            recs += a.heartbeats(1000, 59_000)
            recs.append(a.shutdown(60_000 + 1000 * (i - 1)))
    write("trap-planned-shutdown", recs)


def trap_maintenance():
    # web-01 has a configured maintenance window (30 s - 300 s): its PSU fails at
    # 50 s and it is powered off at 60 s (its will). web-02 is put in maintenance
    # by its operator at 40 s and its agent then goes silent. Without maintenance,
    # two of four lost within a minute would be an L3 network.
    def psu(t):
        failed = t >= 50_000
        return [r("ipmi", "bmc", "psu_ok", 0 if failed else 1,
                  "critical" if failed else "ok", name="PSU1 Status")]
    names = ["web-01", "web-02", "web-03", "web-04"]
    agents = site(names, sensors={"web-01": psu})
    recs = []
    for a in agents:
        recs.append(a.birth(0))
        if a.host == "web-01":
            recs += a.heartbeats(1000, 59_000)
            recs.append(a.will(60_000))
        elif a.host == "web-02":
            recs += a.heartbeats(1000, 40_000)
            recs.append(a.maintenance(40_000))
        else:
            recs += a.heartbeats(1000, 200_000)
    config = ('[[signals.maintenance]]\nsite = "bj1"\nhost = "web-01"\n'
              f'start = {T0 + 30_000}\nend = {T0 + 300_000}\nreason = "PSU swap"\n')
    write("trap-maintenance", recs, config)


def trap_collector_restart():
    # The collector starts (t 0) while three of four agents restart too: it gets
    # their retained wills at once, and their new births 5-20 s later. The startup
    # grace (30 s) covers it: no signal.
    names = ["gw-01", "web-01", "web-02", "web-03"]
    agents = site(names)
    recs = []
    for i, a in enumerate(agents):
        if a.host == "gw-01":
            recs.append(a.birth(0))
            recs += a.heartbeats(1000, 120_000)
        else:
            recs.append(a.will(0))
            back = 5_000 * (i + 1)
            recs.append(a.birth(back, retain=False, boot=f"{a.host}-2"))
            recs += a.heartbeats(back + 1000, 120_000)
    write("trap-collector-restart", recs)


def trap_broker_restart_short():
    # The broker restarts: nothing arrives from 60 s to 70 s, then the retained
    # births are replayed to the collector's new subscription and the agents,
    # reconnected, carry on (same boot, seq goes on). 10 s of silence is fewer
    # than three missed heartbeats (15 s): no signal.
    names = ["gw-01", "web-01", "web-02", "web-03"]
    agents = site(names)
    recs = []
    for a in agents:
        recs.append(a.birth(0))
        recs += a.heartbeats(1000, 60_000)
        recs.append(a.birth(70_000, retain=True))
        recs += a.heartbeats(71_000, 150_000)
    write("trap-broker-restart-short", recs)


def trap_broker_restart_wills():
    # A broker that publishes every client's will as it goes down (a failover that
    # drops the connections): all four wills at 60 s, the births again at 63 s.
    # To the engine this IS a network cut (every agent lost within a minute, and
    # the L3 network has no delay: the DR plan's 30 s budget): raised at once, and
    # cleared 30 s after the births.
    names = ["gw-01", "web-01", "web-02", "web-03"]
    agents = site(names)
    recs = []
    for a in agents:
        recs.append(a.birth(0))
        recs += a.heartbeats(1000, 60_000)
        recs.append(a.will(60_000))
        recs.append(a.birth(63_000))
        recs += a.heartbeats(64_000, 130_000)
    write("trap-broker-restart-wills", recs)


def trap_generator_within_grace():
    # Mains lost at 40 s; the generator starts 12 s later (inside its 20 s start
    # grace) and carries the site until mains return at 120 s. No L3 alarm: only
    # the "on generator" advisory (severity low) while mains are out.
    def gen(t):
        mains = not (40_000 <= t < 120_000)
        running = 52_000 <= t < 125_000
        on_battery = not mains and not running
        return [r("modbus", "ats", "mains_available", 1 if mains else 0),
                r("modbus", "ups-a", "ups_on_battery", 1 if on_battery else 0, name="on_battery"),
                r("modbus", "genset", "generator_running", 1 if running else 0),
                r("modbus", "genset", "generator_fault", 0)]
    agents = site(["gw-01", "web-01", "web-02"], sensors={"gw-01": gen})
    write("trap-generator-within-grace", alive(agents, 0, 200_000))


def trap_one_hot_server():
    # web-03's inlet reads 45 °C (its BMC: critical) from 30 s to 90 s; the other
    # three stay at 24 °C. The room's median does not move: an L2 for web-03, not
    # an L3 cooling.
    names = ["web-01", "web-02", "web-03", "web-04"]
    make = inlets({"web-03"}, 45.0, 30_000, 90_000, state_hot="critical")
    write("trap-one-hot-server", alive(site(names, sensors={h: make(h) for h in names}), 0, 160_000))


# --- corroboration: no L3 on one device's word -----------------------------------

def power_sensors(t, ups_a_out, ups_b_out, gen_mains_out, running=False, gen_fault=False):
    out = []
    for dev, lost in (("ups-a", ups_a_out), ("ups-b", ups_b_out)):
        out.append(r("modbus", dev, "ups_on_battery", 1 if lost else 0,
                     "critical" if lost else "ok", name="on_battery"))
        out.append(r("modbus", dev, "mains_available", 0 if lost else 1, name="input"))
    out.append(r("modbus", "genset", "mains_available", 0 if gen_mains_out else 1, name="mains"))
    out.append(r("modbus", "genset", "generator_running", 1 if running else 0))
    out.append(r("modbus", "genset", "generator_fault", 1 if gen_fault else 0))
    return out


def corroborate_one_ups_on_battery():
    # ups-a goes on battery from 40 s to 100 s (a tripped input breaker) while
    # ups-b and the generator controller still see the mains: L2 power_device
    # about ups-a, no L3.
    def gw(t):
        return power_sensors(t, 40_000 <= t < 100_000, False, False)
    agents = site(["gw-01", "web-01", "web-02"], sensors={"gw-01": gw})
    write("corroborate-one-ups-on-battery", alive(agents, 0, 170_000))


def corroborate_all_sensors_agree():
    # Both UPSes and the generator controller lose the mains from 40 s to 100 s;
    # the generator does not start: L3 power after the 20 s start grace.
    def gw(t):
        out = 40_000 <= t < 100_000
        return power_sensors(t, out, out, out)
    agents = site(["gw-01", "web-01", "web-02"], sensors={"gw-01": gw})
    write("corroborate-all-sensors-agree", alive(agents, 0, 170_000))


def corroborate_single_ups():
    # One UPS is the site's only power device; it goes on battery from 40 s to
    # 100 s: L3 power on its word alone (evidence: corroboration none).
    def gw(t):
        out = 40_000 <= t < 100_000
        return [r("modbus", "ups-a", "ups_on_battery", 1 if out else 0,
                  "critical" if out else "ok", name="on_battery")]
    agents = site(["gw-01", "web-01", "web-02"], sensors={"gw-01": gw})
    write("corroborate-single-ups", alive(agents, 0, 170_000))


def corroborate_generator_fault_mains_present():
    # The generator controller reports a fault from 40 s to 100 s while the
    # mains is present everywhere: nothing at the site level.
    def gw(t):
        return power_sensors(t, False, False, False, gen_fault=40_000 <= t < 100_000)
    agents = site(["gw-01", "web-01", "web-02"], sensors={"gw-01": gw})
    write("corroborate-generator-fault-mains-present", alive(agents, 0, 170_000))


def corroborate_cooling_alarm_flat():
    # A CRAC raises its common alarm from 30 s to 200 s; inlet temperatures stay
    # flat at 24 C: no L3 cooling.
    names = ["web-01", "web-02", "web-03"]
    make = inlets(set(), 24.0, 0, 0)
    sensors = {h: make(h) for h in names}

    def crac(t):
        return [r("modbus", "crac-1", "cooling_unit_alarm", 1 if 30_000 <= t < 200_000 else 0),
                r("modbus", "crac-1", "cooling_unit_running", 1)]
    sensors["gw-01"] = crac
    write("corroborate-cooling-alarm-flat",
          alive(site(names + ["gw-01"], sensors=sensors), 0, 260_000))


def corroborate_lying_probe():
    # Two inlet points; web-01's probe reads 60 C (state ok: a probe reporting
    # nonsense) from 30 s to 90 s while web-02 reads 24 C. The median of two is
    # 42 C, but one point is no consensus: no L3 cooling, not even the advisory.
    names = ["web-01", "web-02"]
    make = inlets({"web-01"}, 60.0, 30_000, 90_000)
    write("corroborate-lying-probe", alive(site(names, sensors={h: make(h) for h in names}), 0, 160_000))


if __name__ == "__main__":
    host_resources()
    host_hardware()
    storage()
    network_device()
    power()
    cooling()
    network()
    region()
    trap_one_host_lost()
    trap_planned_shutdown()
    trap_maintenance()
    trap_collector_restart()
    trap_broker_restart_short()
    trap_broker_restart_wills()
    trap_generator_within_grace()
    trap_one_hot_server()
    corroborate_one_ups_on_battery()
    corroborate_all_sensors_agree()
    corroborate_single_ups()
    corroborate_generator_fault_mains_present()
    corroborate_cooling_alarm_flat()
    corroborate_lying_probe()
