#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The incremental evaluation gives, at every instant, exactly what a full one
//! gives: two engines fed the same pictures of a small changing world, one
//! looking at every site every time (`evaluate`), one told which sites changed
//! (`evaluate_incremental`), must agree on everything they publish.
//!
//! The world is driven by a fixed pseudo-random sequence through calm spells
//! (where quiet looks are reused) and busy ones, across what time alone
//! changes: the startup grace ending, maintenance windows opening and closing,
//! hosts lost and back, a cooling unit in alarm while the rise window moves on,
//! disk counters growing and their hold running out, clear and flap timers.

use std::time::Duration;

use sitewatch_protocol::{ReadingState, quantity as q};
use sitewatch_signals::{
    Engine, HostSnapshot, Liveness, SeriesSnapshot, SignalsConfig, SiteSnapshot, Snapshot,
    config::{MaintenanceWindow, SiteConfig, Timestamp},
};

const T0: i64 = 1_764_080_000_000;
const SITES: [&str; 3] = ["bj1", "sh1", "gz1"];
const HOSTS: usize = 4;

/// xorshift64*: a fixed sequence, the same at every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// One host's mutable picture.
#[derive(Clone)]
struct Host {
    liveness: Liveness,
    cpu: f64,
    inlet: f64,
    cooling_alarm: bool,
    on_battery: bool,
    psu_ok: bool,
    reallocated: f64,
    /// Readings of any quantity, source, state and labels: what each cause's
    /// index ([`sitewatch_signals::host_index`]) must keep or may leave out.
    extra: Vec<Extra>,
    ts: i64,
}

#[derive(Clone)]
struct Extra {
    q: &'static str,
    src: &'static str,
    dev: &'static str,
    name: &'static str,
    value: Option<f64>,
    state: ReadingState,
    label: Option<(&'static str, &'static str)>,
}

impl Extra {
    fn random(rng: &mut Rng) -> Self {
        let pick = |rng: &mut Rng, n: usize| rng.below(n as u64) as usize;
        const READ: [&str; 16] = [
            q::PSU_OK,
            q::FAN_SPEED_RPM,
            q::TEMPERATURE_CELSIUS,
            q::INLET_TEMPERATURE_CELSIUS,
            q::COOLING_UNIT_ALARM,
            q::PROBE_UP,
            q::INTERFACE_UP,
            q::MAINS_AVAILABLE,
            q::UPS_ON_BATTERY,
            q::UPS_BATTERY_LOW,
            q::POWER_FEED_AVAILABLE,
            q::GENERATOR_RUNNING,
            q::GENERATOR_FAULT,
            q::CPU_USAGE_RATIO,
            q::FILESYSTEM_USAGE_RATIO,
            q::DISK_SMART_PASSED,
        ];
        const SRCS: [&str; 6] = ["ipmi", "redfish", "smart", "snmp", "host", "net"];
        const DEVS: [&str; 4] = ["bmc", "sw-1", "sda", "pdu-1"];
        const NAMES: [&str; 3] = ["Inlet Temp", "PSU2", "uplink"];
        const VALUES: [Option<f64>; 7] = [
            Some(0.0),
            Some(1.0),
            Some(0.97),
            Some(24.0),
            Some(45.0),
            Some(5000.0),
            None,
        ];
        const STATES: [ReadingState; 4] = [
            ReadingState::Ok,
            ReadingState::Warning,
            ReadingState::Critical,
            ReadingState::Unknown,
        ];
        const LABELS: [Option<(&str, &str)>; 7] = [
            None,
            Some(("role", "switch")),
            Some(("role", "uplink")),
            Some(("role", "service")),
            Some(("port_role", "uplink")),
            Some(("rack", "r1")),
            Some(("zone", "b")),
        ];
        Extra {
            // Mostly what some cause reads, in every state, so that an index
            // leaving out a reading its cause uses changes what is found.
            q: if rng.chance(70) {
                READ[pick(rng, READ.len())]
            } else {
                q::VOCABULARY[pick(rng, q::VOCABULARY.len())].0
            },
            src: SRCS[pick(rng, SRCS.len())],
            dev: DEVS[pick(rng, DEVS.len())],
            name: NAMES[pick(rng, NAMES.len())],
            value: VALUES[pick(rng, VALUES.len())],
            state: STATES[pick(rng, STATES.len())],
            label: LABELS[pick(rng, LABELS.len())],
        }
    }

    fn snapshot(&self, ts: i64) -> SeriesSnapshot {
        let mut r = SeriesSnapshot::ok(self.src, self.dev, self.q, 0.0, ts)
            .named(self.name)
            .in_state(self.state);
        r.value = self.value;
        match self.label {
            Some((k, v)) => r.with_label(k, v),
            None => r,
        }
    }
}

impl Host {
    fn normal() -> Self {
        Host {
            liveness: Liveness::Online,
            cpu: 0.3,
            inlet: 22.0,
            cooling_alarm: false,
            on_battery: false,
            psu_ok: true,
            reallocated: 0.0,
            extra: Vec::new(),
            ts: T0,
        }
    }

    fn snapshot(&self, name: String, zone: &str) -> HostSnapshot {
        let r = |src: &str, dev: &str, quantity: &str, v: f64| {
            SeriesSnapshot::ok(src, dev, quantity, v, self.ts)
        };
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        HostSnapshot::new(name, self.liveness)
            .with_label("zone", zone)
            .with_readings([
                r("host", "cpu", q::CPU_USAGE_RATIO, self.cpu),
                r("ipmi", "bmc", q::INLET_TEMPERATURE_CELSIUS, self.inlet),
                r(
                    "modbus",
                    "crac-1",
                    q::COOLING_UNIT_ALARM,
                    flag(self.cooling_alarm),
                ),
                r("modbus", "ups-a", q::UPS_ON_BATTERY, flag(self.on_battery)),
                r(
                    "modbus",
                    "ups-a",
                    q::MAINS_AVAILABLE,
                    flag(!self.on_battery),
                ),
                r("ipmi", "psu1", q::PSU_OK, flag(self.psu_ok)),
                r(
                    "smart",
                    "sda",
                    q::DISK_REALLOCATED_SECTORS,
                    self.reallocated,
                ),
            ])
            .with_readings(self.extra.iter().map(|e| e.snapshot(self.ts)))
    }
}

struct World {
    sites: Vec<Vec<Host>>,
    /// By site, and by site and host: numbers changed with their content.
    revisions: Vec<u64>,
    host_revisions: Vec<Vec<u64>>,
    revision: u64,
}

impl World {
    fn new() -> Self {
        World {
            sites: vec![vec![Host::normal(); HOSTS]; SITES.len()],
            revisions: (1..=SITES.len() as u64).collect(),
            host_revisions: (0..SITES.len() as u64)
                .map(|s| (0..HOSTS as u64).map(|h| 100 + s * 10 + h).collect())
                .collect(),
            revision: 1_000,
        }
    }

    /// Changes one thing of one host of `site` at `now`.
    fn mutate(&mut self, rng: &mut Rng, site: usize, now: i64) {
        let host = rng.below(HOSTS as u64) as usize;
        let h = &mut self.sites[site][host];
        h.ts = now;
        match rng.below(11) {
            0 => h.cpu = [0.2, 0.5, 0.97][rng.below(3) as usize],
            1 | 2 => h.inlet = 20.0 + rng.below(200) as f64 / 10.0,
            3 => h.cooling_alarm = rng.chance(40),
            4 => h.on_battery = rng.chance(30),
            5 => h.psu_ok = !rng.chance(20),
            6 => {
                if rng.chance(30) {
                    h.reallocated += 1.0;
                }
            }
            7 => {
                h.liveness = match h.liveness {
                    Liveness::Online if rng.chance(50) => Liveness::Lost { since_ms: now },
                    Liveness::Online => Liveness::Shutdown,
                    _ => Liveness::Online,
                }
            }
            8 | 9 => {
                let extra = Extra::random(rng);
                let slot = rng.below(4) as usize;
                match h.extra.get_mut(slot) {
                    Some(e) => *e = extra,
                    None => h.extra.push(extra),
                }
            }
            _ => {
                *h = Host {
                    ts: now,
                    ..Host::normal()
                }
            }
        }
        self.revision += 1;
        self.revisions[site] = self.revision;
        self.revision += 1;
        self.host_revisions[site][host] = self.revision;
    }

    fn heal(&mut self, now: i64) {
        for (site, hosts) in self.sites.iter_mut().enumerate() {
            for h in hosts {
                *h = Host {
                    ts: now,
                    reallocated: h.reallocated,
                    ..Host::normal()
                };
            }
            self.revision += 1;
            self.revisions[site] = self.revision;
            for number in &mut self.host_revisions[site] {
                self.revision += 1;
                *number = self.revision;
            }
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot::new(
            SITES
                .iter()
                .zip(&self.sites)
                .map(|(site, hosts)| {
                    let hosts = hosts
                        .iter()
                        .enumerate()
                        .map(|(i, h)| h.snapshot(format!("{site}-{i:02}"), ["a", "b"][i % 2]))
                        .collect();
                    SiteSnapshot::new(*site, hosts)
                })
                .collect(),
        )
    }
}

fn config() -> SignalsConfig {
    let mut cfg = SignalsConfig {
        startup_grace: Duration::from_secs(90),
        ..SignalsConfig::default()
    };
    cfg.cooling.rise_window = Duration::from_secs(120);
    cfg.cooling.zone_label = "zone".into();
    cfg.storage.growth_hold = Duration::from_secs(300);
    // A configured site whose expected host never reports: lost once the grace ends.
    cfg.sites.insert(
        "dc9".into(),
        SiteConfig {
            expected_hosts: vec!["dc9-01".into()],
            ..SiteConfig::default()
        },
    );
    for (site, host, from_s, to_s) in [
        ("sh1", None, 400, 520),
        ("gz1", Some("gz1-01"), 700, 760),
        ("bj1", None, 2_000, 2_030),
    ] {
        cfg.maintenance.push(MaintenanceWindow {
            site: site.into(),
            host: host.map(str::to_owned),
            start: Timestamp(T0 + from_s * 1000),
            end: Timestamp(T0 + to_s * 1000),
            reason: None,
        });
    }
    cfg
}

/// Drives both engines through `steps` evaluations `step_ms(rng)` apart, each
/// site changing with `busy(t)` percent chance per step; returns the number
/// of (full, reused) looks of the incremental engine, which is told the sites'
/// and the hosts' numbers (and so keeps the hosts' indexes).
fn compare(
    seed: u64,
    steps: usize,
    step_ms: impl Fn(&mut Rng) -> i64,
    busy: impl Fn(i64) -> u64,
) -> (u64, u64) {
    let mut rng = Rng(seed);
    let mut world = World::new();
    let mut full = Engine::new(config(), T0);
    let mut incremental = Engine::new(config(), T0);
    let mut now = T0;
    let mut raised = 0;
    let mut calm_from = None;
    for step in 0..steps {
        now += step_ms(&mut rng);
        let chance = busy((now - T0) / 1000);
        if chance == 0 && calm_from.is_none() {
            // A calm spell begins with every fault repaired (counters keep
            // their counts).
            calm_from = Some(now);
            world.heal(now);
        } else if chance > 0 {
            calm_from = None;
        }
        for site in 0..SITES.len() {
            if rng.chance(chance) {
                world.mutate(&mut rng, site, now);
            }
        }
        let snapshot = world.snapshot();
        let a = full.evaluate(&snapshot, now);
        let b =
            incremental.evaluate_revised(&snapshot, &world.revisions, &world.host_revisions, now);
        assert_eq!(a, b, "step {step}, +{} s", (now - T0) / 1000);
        raised += a.changes.len();
    }
    // The world did raise and clear signals: the comparison is not of silence.
    assert!(raised > 20, "only {raised} changes");
    // Sites looked at in full used hosts' indexes kept from earlier looks.
    let (built, reused) = incremental.host_indexes();
    assert!(reused > built, "{built} indexes built, {reused} reused");
    incremental.looks()
}

#[test]
fn an_incremental_evaluation_is_always_what_a_full_one_would_be() {
    // Every second for 50 minutes: calm spells (nothing changes for minutes)
    // between busy ones.
    let busy = |s: i64| match s % 600 {
        0..120 => 25,
        120..200 => 3,
        _ => 0,
    };
    for seed in [1, 0x9e37_79b9_7f4a_7c15, 42] {
        let (full, reused) = compare(seed, 3_000, |_| 1000, busy);
        // A calm world's looks are reused (dc9, with its lost host, never is;
        // the others' in the calm two thirds of the time, less what the busy
        // spells leave to clear).
        assert!(
            reused * 4 > full + reused,
            "seed {seed}: {full} full looks, {reused} reused"
        );
    }
}

#[test]
fn an_incremental_evaluation_agrees_over_days_of_uneven_ticks() {
    // Three days of evaluations 1 s to 15 min apart: counters outlive their
    // hold and the engine's pruning runs over reused looks.
    let (_, reused) = compare(7, 900, |rng| 1000 + rng.below(900_000) as i64, |_| 10);
    assert!(reused > 0);
}

#[test]
fn a_cooling_rise_that_time_alone_reveals_is_seen_by_the_incremental_evaluation() {
    // A cooling unit in alarm, inlets steady at 20 °C, a short dip to 18 °C,
    // then 20.5 °C from +220 s on and nothing new: at +220 s the median 3 min
    // ago was 20 (a rise of 0.5, under the 1 °C of the rule: quiet); from
    // +400 s it is the dip's 18 (a rise of 2.5): the L3 comes of time alone.
    let cfg = SignalsConfig {
        startup_grace: Duration::ZERO,
        ..SignalsConfig::default()
    };
    let mut full = Engine::new(cfg.clone(), T0 - 3_600_000);
    let mut incremental = Engine::new(cfg, T0 - 3_600_000);
    let picture = |inlet: f64| {
        let mut h = Host::normal();
        h.inlet = inlet;
        h.cooling_alarm = true;
        Snapshot::new(vec![SiteSnapshot::new(
            "bj1",
            vec![
                h.snapshot("bj1-01".into(), "a"),
                h.snapshot("bj1-02".into(), "a"),
            ],
        )])
    };
    let mut raised_at = None;
    for s in 0..600 {
        let (inlet, revision) = match s {
            0..200 => (20.0, 1),
            200..220 => (18.0, 2),
            _ => (20.5, 3),
        };
        let now = T0 + s * 1000;
        let snapshot = picture(inlet);
        let a = full.evaluate(&snapshot, now);
        let b = incremental.evaluate_incremental(&snapshot, &[revision], now);
        assert_eq!(a, b, "+{s} s");
        if raised_at.is_none() && !a.changes.is_empty() {
            raised_at = Some(s);
        }
    }
    let raised_at = raised_at.expect("the rise raised nothing");
    assert!((390..=420).contains(&raised_at), "raised at +{raised_at} s");
    assert!(incremental.looks().1 > 100, "{:?}", incremental.looks());
}
