#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The engine's behaviour, one DR-plan rule per test, on an explicit clock.

use std::time::Duration;

use sitewatch_protocol::{Cause, Evidence, Level, ReadingState, Severity, quantity as q};
use sitewatch_signals::{
    Change, ChangeKind, Engine, HostSnapshot, Liveness, SeriesSnapshot, SignalsConfig,
    SiteSnapshot, Snapshot,
    config::{MaintenanceWindow, SiteConfig, Timestamp},
};

/// 2025-11-25T14:13:20Z: the tests' time zero.
const T0: i64 = 1_764_080_000_000;

fn at(s: i64) -> i64 {
    T0 + s * 1000
}

/// An engine whose collector started long ago: no startup grace in effect.
fn engine() -> Engine {
    engine_with(SignalsConfig::default())
}

fn engine_with(cfg: SignalsConfig) -> Engine {
    Engine::new(cfg, T0 - 3_600_000)
}

fn online(host: &str) -> HostSnapshot {
    HostSnapshot::new(host, Liveness::Online)
}

fn lost(host: &str, since_s: i64) -> HostSnapshot {
    HostSnapshot::new(
        host,
        Liveness::Lost {
            since_ms: at(since_s),
        },
    )
}

fn reading(src: &str, dev: &str, quantity: &str, value: f64) -> SeriesSnapshot {
    SeriesSnapshot::ok(src, dev, quantity, value, T0)
}

fn site(name: &str, hosts: Vec<HostSnapshot>) -> Snapshot {
    Snapshot::new(vec![SiteSnapshot::new(name, hosts)])
}

/// Evaluates every second of [from, to) with the snapshot `frame(second)`.
fn run(engine: &mut Engine, from: i64, to: i64, frame: impl Fn(i64) -> Snapshot) -> Vec<Change> {
    let mut changes = Vec::new();
    for s in from..to {
        changes.extend(engine.evaluate(&frame(s), at(s)).changes);
    }
    changes
}

/// (second, kind, cause, subject) of each change, for compact asserts.
fn brief(changes: &[Change]) -> Vec<(i64, ChangeKind, Cause, &str)> {
    changes
        .iter()
        .map(|c| ((c.t_ms - T0) / 1000, c.kind, c.cause, c.subject.as_str()))
        .collect()
}

fn ups_gateway(on_battery: bool) -> HostSnapshot {
    online("gw-01").with_reading(reading(
        "modbus",
        "ups-a",
        q::UPS_ON_BATTERY,
        if on_battery { 1.0 } else { 0.0 },
    ))
}

#[test]
fn ups_on_battery_past_grace_raises_power_l3() {
    let mut e = engine();
    let changes = run(&mut e, 0, 30, |_| site("bj1", vec![ups_gateway(true)]));
    assert_eq!(
        brief(&changes),
        [(20, ChangeKind::Raised, Cause::Power, "bj1")]
    );
    let ev = e.evaluate(&site("bj1", vec![ups_gateway(true)]), at(30));
    assert_eq!(ev.level_of("bj1"), 3);
    let signal = &ev.active[0];
    assert_eq!(
        (signal.level, signal.severity),
        (Level::L3, Severity::Critical)
    );
    // `since` is when the UPS was first seen on battery, not the end of the grace.
    assert_eq!(signal.since, at(0));
}

#[test]
fn ups_back_on_mains_within_grace_raises_nothing() {
    let mut e = engine();
    let changes = run(&mut e, 0, 60, |s| site("bj1", vec![ups_gateway(s < 15)]));
    assert_eq!(brief(&changes), []);
}

#[test]
fn generator_fault_with_mains_lost_raises_power_l3_at_once() {
    let mut e = engine();
    let gw = online("gw-01").with_readings([
        reading("modbus", "ats", q::MAINS_AVAILABLE, 0.0),
        reading("modbus", "genset", q::GENERATOR_RUNNING, 0.0),
        reading("modbus", "genset", q::GENERATOR_FAULT, 1.0),
    ]);
    let changes = run(&mut e, 0, 5, |_| site("bj1", vec![gw.clone()]));
    assert_eq!(
        brief(&changes),
        [(0, ChangeKind::Raised, Cause::Power, "bj1")]
    );
}

#[test]
fn generator_that_takes_the_load_is_only_an_advisory() {
    let mut e = engine();
    let frame = |s: i64| {
        let running = if s >= 12 { 1.0 } else { 0.0 };
        site(
            "bj1",
            vec![online("gw-01").with_readings([
                reading("modbus", "ats", q::MAINS_AVAILABLE, 0.0),
                reading("modbus", "genset", q::GENERATOR_RUNNING, running),
            ])],
        )
    };
    let changes = run(&mut e, 0, 60, frame);
    assert_eq!(
        brief(&changes),
        [(12, ChangeKind::Raised, Cause::Power, "bj1")]
    );
    assert_eq!(changes[0].severity, Severity::Low);
    assert_eq!(e.evaluate(&frame(60), at(60)).level_of("bj1"), 0);
}

#[test]
fn power_l3_inhibits_l2_of_its_site() {
    let mut e = engine();
    // On battery from 0 s with no generator; from 40 s web-01 is lost and web-02's
    // PSU has lost its input; web-03's disk fails. Mains returns at 100 s, web-02's
    // PSU with it, but web-01 stays down.
    let frame = |s: i64| {
        let mut hosts = vec![ups_gateway(s < 100)];
        hosts.push(if s >= 40 {
            lost("web-01", 40)
        } else {
            online("web-01")
        });
        let psu = if (40..100).contains(&s) { 0.0 } else { 1.0 };
        hosts.push(online("web-02").with_reading(reading("ipmi", "bmc", q::PSU_OK, psu)));
        let smart = if s >= 40 { 0.0 } else { 1.0 };
        hosts.push(online("web-03").with_reading(reading(
            "smart",
            "sda",
            q::DISK_SMART_PASSED,
            smart,
        )));
        hosts.push(online("web-04"));
        site("bj1", hosts)
    };
    let changes = run(&mut e, 0, 100, frame);
    // The L2s of web-01 and web-02 never page: the L3 explains them. The disk does.
    assert_eq!(
        brief(&changes),
        [
            (20, ChangeKind::Raised, Cause::Power, "bj1"),
            (40, ChangeKind::Raised, Cause::Storage, "web-03:sda"),
        ]
    );
    let ev = e.evaluate(&frame(99), at(99));
    let power = ev.active.iter().find(|s| s.cause == Cause::Power).unwrap();
    let inhibits: Vec<(Cause, &str)> = power
        .evidence
        .iter()
        .filter_map(|e| match e {
            Evidence::Detail(d) => d.inhibits.as_ref().map(|i| (i.cause, i.subject.as_str())),
            Evidence::Text(_) => None,
        })
        .collect();
    assert_eq!(
        inhibits,
        [
            (Cause::HostHardware, "web-01"),
            (Cause::HostHardware, "web-02")
        ]
    );
    assert!(!ev.active.iter().any(|s| s.cause == Cause::HostHardware));

    // The L3 clears 30 s after mains returns; web-01 is still lost, so its L2
    // reappears; web-02's PSU is fine again and stays quiet.
    let changes = run(&mut e, 100, 200, frame);
    assert_eq!(
        brief(&changes),
        [
            (130, ChangeKind::Cleared, Cause::Power, "bj1"),
            (130, ChangeKind::Released, Cause::HostHardware, "web-01"),
        ]
    );
}

#[test]
fn lost_agents_within_grace_after_start_raise_nothing() {
    // The collector restarts at T0; retained wills say three of four agents are
    // lost until their births arrive, 10 s later.
    let mut e = Engine::new(SignalsConfig::default(), T0);
    let frame = |s: i64| {
        let host = |h: &str| if s < 10 { lost(h, 0) } else { online(h) };
        site(
            "bj1",
            vec![
                host("web-01"),
                host("web-02"),
                host("web-03"),
                online("web-04"),
            ],
        )
    };
    let changes = run(&mut e, 0, 120, frame);
    assert_eq!(brief(&changes), []);
}

#[test]
fn agents_still_lost_after_the_grace_raise_network_l3_at_its_end() {
    let mut e = Engine::new(SignalsConfig::default(), T0);
    let frame = |_| {
        site(
            "bj1",
            vec![lost("web-01", 0), lost("web-02", 0), online("web-03")],
        )
    };
    let changes = run(&mut e, 0, 35, frame);
    assert_eq!(
        brief(&changes),
        [(30, ChangeKind::Raised, Cause::Network, "bj1")]
    );
}

#[test]
fn expected_host_never_seen_counts_as_lost_after_the_grace() {
    let mut cfg = SignalsConfig::default();
    cfg.sites.insert(
        "bj1".into(),
        SiteConfig {
            expected_hosts: vec!["web-01".into(), "web-02".into(), "web-03".into()],
            ..SiteConfig::default()
        },
    );
    let mut e = Engine::new(cfg, T0);
    let changes = run(&mut e, 0, 60, |_| {
        site("bj1", vec![online("web-01"), online("web-02")])
    });
    assert_eq!(
        brief(&changes),
        [(40, ChangeKind::Raised, Cause::HostHardware, "web-03")]
    );
}

#[test]
fn half_of_agents_lost_within_a_minute_raises_network_l3() {
    let mut e = engine();
    let frame = |s: i64| {
        let hosts = vec![
            if s >= 0 {
                lost("web-01", 0)
            } else {
                online("web-01")
            },
            if s >= 40 {
                lost("web-02", 40)
            } else {
                online("web-02")
            },
            online("web-03").with_reading(
                reading("net", "bj2-gw", q::PROBE_UP, 0.0).with_label("role", "peer_site"),
            ),
            online("web-04"),
        ];
        site("bj1", hosts)
    };
    let changes = run(&mut e, 0, 60, frame);
    // web-01 alone is an L2 at 10 s; web-02 at 40 s makes it half the site within
    // a minute: the L3, which then explains web-01's L2.
    assert_eq!(
        brief(&changes),
        [
            (10, ChangeKind::Raised, Cause::HostHardware, "web-01"),
            (40, ChangeKind::Raised, Cause::Network, "bj1"),
            (40, ChangeKind::Inhibited, Cause::HostHardware, "web-01"),
        ]
    );
    let ev = e.evaluate(&frame(60), at(60));
    assert_eq!(ev.level_of("bj1"), 3);
    let hosts: Vec<&str> = ev.active[0]
        .evidence
        .iter()
        .filter_map(|e| match e {
            Evidence::Detail(d) if d.inhibits.is_none() => d.host.as_deref(),
            _ => None,
        })
        .collect();
    assert_eq!(
        hosts,
        ["web-01", "web-02", "web-03"],
        "lost hosts, then the probe from inside"
    );
}

#[test]
fn hosts_lost_minutes_apart_are_l2s_not_l3() {
    let mut e = engine();
    let frame = |s: i64| {
        site(
            "bj1",
            vec![
                lost("web-01", 0),
                if s >= 120 {
                    lost("web-02", 120)
                } else {
                    online("web-02")
                },
                online("web-03"),
                online("web-04"),
            ],
        )
    };
    let changes = run(&mut e, 0, 180, frame);
    assert_eq!(
        brief(&changes),
        [
            (10, ChangeKind::Raised, Cause::HostHardware, "web-01"),
            (130, ChangeKind::Raised, Cause::HostHardware, "web-02"),
        ]
    );
}

#[test]
fn one_lost_host_is_l2_not_l3() {
    let mut e = engine();
    let frame = |_| {
        site(
            "bj1",
            vec![lost("web-01", 0), online("web-02"), online("web-03")],
        )
    };
    let changes = run(&mut e, 0, 60, frame);
    assert_eq!(
        brief(&changes),
        [(10, ChangeKind::Raised, Cause::HostHardware, "web-01")]
    );
    assert_eq!(e.evaluate(&frame(60), at(60)).level_of("bj1"), 2);
}

#[test]
fn shut_down_and_maintenance_agents_never_count_as_lost() {
    let mut cfg = SignalsConfig::default();
    cfg.maintenance.push(MaintenanceWindow {
        site: "bj1".into(),
        host: Some("web-04".into()),
        start: Timestamp(at(-60)),
        end: Timestamp(at(3600)),
        reason: Some("firmware update".into()),
    });
    let mut e = engine_with(cfg);
    let frame = |_| {
        site(
            "bj1",
            vec![
                HostSnapshot::new("web-01", Liveness::Shutdown),
                HostSnapshot::new("web-02", Liveness::Shutdown),
                HostSnapshot::new("web-03", Liveness::Maintenance),
                // Lost, but inside its maintenance window.
                lost("web-04", 0).with_reading(reading("ipmi", "bmc", q::PSU_OK, 0.0)),
                online("web-05"),
            ],
        )
    };
    let changes = run(&mut e, 0, 120, frame);
    assert_eq!(brief(&changes), []);
}

#[test]
fn site_maintenance_window_suppresses_its_l3() {
    let mut cfg = SignalsConfig::default();
    cfg.maintenance.push(MaintenanceWindow {
        site: "bj1".into(),
        host: None,
        start: Timestamp(at(0)),
        end: Timestamp(at(120)),
        reason: Some("generator test".into()),
    });
    let mut e = engine_with(cfg);
    let changes = run(&mut e, 0, 200, |_| site("bj1", vec![ups_gateway(true)]));
    // Raised once the window closes, and only then.
    assert_eq!(
        brief(&changes),
        [(140, ChangeKind::Raised, Cause::Power, "bj1")]
    );
}

fn cpu_host(cpu: f64) -> Snapshot {
    site(
        "bj1",
        vec![online("web-01").with_reading(reading("host", "cpu", q::CPU_USAGE_RATIO, cpu))],
    )
}

#[test]
fn cpu_above_85_for_5m_raises_l1() {
    let mut e = engine();
    let changes = run(&mut e, 0, 400, |_| cpu_host(0.90));
    assert_eq!(
        brief(&changes),
        [(300, ChangeKind::Raised, Cause::HostResources, "web-01:cpu")]
    );
    assert_eq!(changes[0].severity, Severity::Medium);
    assert_eq!(changes[0].level, Level::L1);
    // 82 % is under the limit but above the 80 % it clears below: still raised.
    assert_eq!(brief(&run(&mut e, 400, 600, |_| cpu_host(0.82))), []);
    // 75 %: the alarm clears after 30 s, the 70 % advisory holds.
    let changes = run(&mut e, 600, 700, |_| cpu_host(0.75));
    assert_eq!(
        brief(&changes),
        [(
            630,
            ChangeKind::Deescalated,
            Cause::HostResources,
            "web-01:cpu"
        )]
    );
    assert_eq!(changes[0].severity, Severity::Low);
    assert_eq!(e.evaluate(&cpu_host(0.75), at(700)).level_of("bj1"), 0);
}

#[test]
fn cpu_brief_spike_raises_nothing() {
    let mut e = engine();
    let changes = run(&mut e, 0, 900, |s| {
        cpu_host(if s < 120 { 0.99 } else { 0.20 })
    });
    assert_eq!(brief(&changes), []);
}

fn switch_probe(up: bool) -> Snapshot {
    let probe = |h: &str| {
        online(h).with_reading(
            reading("net", "sw-a1", q::PROBE_UP, if up { 1.0 } else { 0.0 })
                .with_label("role", "switch"),
        )
    };
    site("bj1", vec![probe("web-01"), probe("web-02")])
}

#[test]
fn switch_unreachable_for_3_probes_raises_network_device_l2() {
    let mut e = engine();
    // Probes every 5 s: ok at 0, failed at 5, 10 and 15 s. The snapshot holds the
    // latest probe, so it reads "down" from 5 s on.
    let changes = run(&mut e, 0, 30, |s| switch_probe(s < 5));
    assert_eq!(
        brief(&changes),
        [(15, ChangeKind::Raised, Cause::NetworkDevice, "sw-a1")]
    );
}

#[test]
fn switch_unreachable_for_2_probes_raises_nothing() {
    let mut e = engine();
    let changes = run(&mut e, 0, 60, |s| switch_probe(!(5..15).contains(&s)));
    assert_eq!(brief(&changes), []);
}

#[test]
fn flapping_signal_is_damped() {
    let mut e = engine();
    // The switch is down 40 s, up 40 s, for ten minutes, then stays up.
    let frame = |s: i64| switch_probe(s >= 600 || s % 80 >= 40);
    let changes = run(&mut e, 0, 1200, frame);
    let kinds: Vec<(i64, ChangeKind)> = brief(&changes).iter().map(|c| (c.0, c.1)).collect();
    // Raised at 10 s, cleared 30 s after each recovery; the third raise (at 170 s)
    // is the fifth change: from then on it is held until quiet for 5 minutes.
    assert_eq!(
        kinds,
        [
            (10, ChangeKind::Raised),
            (70, ChangeKind::Cleared),
            (90, ChangeKind::Raised),
            (150, ChangeKind::Cleared),
            (170, ChangeKind::Raised),
            // Last down until 600 s (560..600), quiet from then: 600 + 300.
            (900, ChangeKind::Cleared),
        ]
    );
}

#[test]
fn two_sites_of_a_region_at_l3_raise_l4() {
    let mut cfg = SignalsConfig::default();
    for (s, region) in [("bj1", "cn-north"), ("bj2", "cn-north"), ("sh1", "cn-east")] {
        cfg.sites.insert(
            s.into(),
            SiteConfig {
                region: Some(region.into()),
                ..SiteConfig::default()
            },
        );
    }
    let mut e = engine_with(cfg);
    let frame = |s: i64| {
        Snapshot::new(vec![
            SiteSnapshot::new("bj1", vec![ups_gateway(true)]),
            SiteSnapshot::new("bj2", vec![ups_gateway(s >= 5)]),
            SiteSnapshot::new("sh1", vec![ups_gateway(true)]),
        ])
    };
    let changes = run(&mut e, 0, 40, frame);
    assert_eq!(
        brief(&changes),
        [
            (20, ChangeKind::Raised, Cause::Power, "bj1"),
            (20, ChangeKind::Raised, Cause::Power, "sh1"),
            (25, ChangeKind::Raised, Cause::Region, "cn-north"),
            (25, ChangeKind::Raised, Cause::Region, "cn-north"),
            (25, ChangeKind::Raised, Cause::Power, "bj2"),
        ]
    );
    assert_eq!(changes[2].site, "bj1");
    assert_eq!(changes[3].site, "bj2");
    let ev = e.evaluate(&frame(40), at(40));
    assert_eq!(
        (ev.level_of("bj1"), ev.level_of("bj2"), ev.level_of("sh1")),
        (4, 4, 3)
    );
    let l4 = ev.site_signals("bj1").next().unwrap();
    assert_eq!((l4.level, l4.subject.as_str()), (Level::L4, "cn-north"));
    // Its summary, then one entry per site's L3.
    assert_eq!(l4.evidence.len(), 3);
    // The L3s stay published under the L4.
    assert_eq!(ev.site_signals("bj1").count(), 2);
}

fn inlets(temps: &[f64]) -> Snapshot {
    let hosts = temps
        .iter()
        .enumerate()
        .map(|(i, t)| {
            online(&format!("web-{i:02}")).with_reading(
                SeriesSnapshot::ok("ipmi", "bmc", q::TEMPERATURE_CELSIUS, *t, T0)
                    .named("Inlet Temp"),
            )
        })
        .collect();
    site("bj1", hosts)
}

#[test]
fn median_inlet_above_32_raises_cooling_l3() {
    let mut e = engine();
    let changes = run(&mut e, 0, 30, |_| inlets(&[33.0, 34.0, 35.0, 24.0]));
    assert_eq!(
        brief(&changes),
        [(10, ChangeKind::Raised, Cause::Cooling, "bj1")]
    );
    assert_eq!(changes[0].severity, Severity::Critical);
    assert_eq!(
        e.evaluate(&inlets(&[33.0, 34.0, 35.0, 24.0]), at(30))
            .level_of("bj1"),
        3
    );
}

#[test]
fn median_inlet_above_27_is_an_advisory_not_a_disaster() {
    let mut e = engine();
    let changes = run(&mut e, 0, 30, |_| inlets(&[28.0, 28.5, 29.0]));
    assert_eq!(
        brief(&changes),
        [(10, ChangeKind::Raised, Cause::Cooling, "bj1")]
    );
    assert_eq!(changes[0].severity, Severity::Low);
    assert_eq!(
        e.evaluate(&inlets(&[28.0, 28.5, 29.0]), at(30))
            .level_of("bj1"),
        0
    );
}

#[test]
fn reallocated_sectors_growing_raises_storage_l2() {
    let mut e = engine();
    let frame = |s: i64| {
        let count = if s >= 600 { 16.0 } else { 8.0 };
        site(
            "bj1",
            vec![online("db-01").with_reading(reading(
                "smart",
                "sda",
                q::DISK_REALLOCATED_SECTORS,
                count,
            ))],
        )
    };
    let changes = run(&mut e, 0, 700, frame);
    assert_eq!(
        brief(&changes),
        [(600, ChangeKind::Raised, Cause::Storage, "db-01:sda")]
    );
    assert_eq!(changes[0].level, Level::L2);
}

#[test]
fn nvme_critical_warning_raises_storage_l2() {
    let mut e = engine();
    let nvme =
        reading("smart", "nvme0", "nvme_critical_warning", 4.0).in_state(ReadingState::Critical);
    let changes = run(&mut e, 0, 5, |_| {
        site("bj1", vec![online("db-01").with_reading(nvme.clone())])
    });
    assert_eq!(
        brief(&changes),
        [(0, ChangeKind::Raised, Cause::Storage, "db-01:nvme0")]
    );
}

/// The DR plan: health checks every 5 s, three failures in a row, switch within
/// 30 s. The collector marks an agent lost at its will or after three missed 5 s
/// heartbeats (15 s at worst); the engine's part must fit in what is left.
#[test]
fn fault_becomes_signal_within_30s_at_default_intervals() {
    const BUDGET_S: i64 = 30;
    const HEARTBEAT_S: i64 = 5;
    const DETECTION_S: i64 = 3 * HEARTBEAT_S;
    let cfg = SignalsConfig::default();
    // The causes the failover acts on must leave room: detection + for < budget.
    for (cause, hold) in [
        ("host_hardware", cfg.host_hardware.hold_for),
        ("network_device", cfg.network_device.hold_for),
        ("storage", cfg.storage.hold_for),
        ("power", cfg.power.generator_start_grace),
    ] {
        assert!(
            hold.as_secs() as i64 + HEARTBEAT_S < BUDGET_S && hold <= Duration::from_secs(20),
            "{cause} waits {hold:?}"
        );
    }
    assert!(cfg.host_hardware.hold_for.as_secs() as i64 + DETECTION_S < BUDGET_S);

    // A whole site cut at 0 s: its agents' last heartbeats were 0-4 s before, so
    // the collector marks them lost between 11 and 15 s.
    let mut e = engine();
    let cut = |s: i64| {
        let hosts = (0..4)
            .map(|i| {
                let lost_at = DETECTION_S - i;
                if s >= lost_at {
                    lost(&format!("web-{i}"), lost_at)
                } else {
                    online(&format!("web-{i}"))
                }
            })
            .collect();
        site("bj1", hosts)
    };
    let changes = run(&mut e, 0, 60, cut);
    let raised = changes.iter().find(|c| c.cause == Cause::Network).unwrap();
    assert!(
        raised.t_ms - at(0) <= BUDGET_S * 1000,
        "network L3 at {}",
        raised.t_ms - at(0)
    );

    // One server dies at 0 s: lost at 15 s, its L2 within the budget.
    let mut e = engine();
    let one = |s: i64| {
        let web = if s >= DETECTION_S {
            lost("web-0", DETECTION_S)
        } else {
            online("web-0")
        };
        site("bj1", vec![web, online("web-1"), online("web-2")])
    };
    let changes = run(&mut e, 0, 60, one);
    let raised = changes
        .iter()
        .find(|c| c.cause == Cause::HostHardware)
        .unwrap();
    assert!(
        raised.t_ms - at(0) <= BUDGET_S * 1000,
        "host L2 at {}",
        raised.t_ms - at(0)
    );

    // Mains lost at 0 s, seen at the next 5 s UPS poll; no generator.
    let mut e = engine();
    let changes = run(&mut e, 0, 60, |s| {
        site("bj1", vec![ups_gateway(s >= HEARTBEAT_S)])
    });
    let raised = changes.iter().find(|c| c.cause == Cause::Power).unwrap();
    assert!(
        raised.t_ms - at(0) <= BUDGET_S * 1000,
        "power L3 at {}",
        raised.t_ms - at(0)
    );
}

#[test]
fn signals_payload_carries_the_level_and_serializes_as_the_wire_type() {
    let mut e = engine();
    run(&mut e, 0, 25, |_| site("bj1", vec![ups_gateway(true)]));
    let ev = e.evaluate(&site("bj1", vec![ups_gateway(true)]), at(25));
    let payload = ev.signals_for_site("bj1");
    assert_eq!((payload.v, payload.level, payload.signals.len()), (1, 3, 1));
    assert_eq!(payload.ts, at(25));
    let json = serde_json::to_value(&payload).unwrap();
    assert_eq!(json["signals"][0]["cause"], "power");
    assert_eq!(json["signals"][0]["level"], "L3");
    assert!(
        json["signals"][0]["evidence"][0].is_string(),
        "the summary comes first"
    );
    assert_eq!(ev.signals_for_site("nowhere").level, 0);
}

#[test]
fn timeline_entries_follow_the_replay_format() {
    let mut e = engine();
    let changes = run(&mut e, 0, 25, |_| site("bj1", vec![ups_gateway(true)]));
    let entry = changes[0].timeline_entry(20_000).unwrap();
    assert_eq!(
        serde_json::to_string(&entry).unwrap(),
        r#"{"t_ms":20000,"event":"raised","site":"bj1","level":"L3","cause":"power","subject":"bj1"}"#
    );
}
