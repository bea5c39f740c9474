#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The modbus source end to end against a real peer: a pymodbus server
//! holding register images built from the profiles, over Modbus TCP, RTU over
//! TCP, and RTU through a socat pty pair with several units on one bus.

#[path = "support/pty.rs"]
mod pty;

use std::{
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use pty::pty_pair;
use sitewatch_agent::{
    source::modbus::config::ModbusSourceConfig,
    source::{Poll, modbus::ModbusSource},
};
use sitewatch_modbus_profile::{Plan, Profile, RegisterImage, SimValue, Table, shipped};
use sitewatch_protocol::{Reading, ReadingState};

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn profile(name: &str) -> Profile {
    shipped::load(name).unwrap().unwrap()
}

/// One unit's image as JSON; `dense` also maps every register the plan's
/// reads span (a tolerant device), else only the profile's own registers.
fn unit_json(profile: &Profile, image: &RegisterImage, dense: bool) -> String {
    let mut words: std::collections::BTreeMap<(Table, u16), u16> =
        image.all_words().map(|(t, a, w)| ((t, a), w)).collect();
    let mut bits: std::collections::BTreeMap<(Table, u16), bool> =
        image.all_bits().map(|(t, a, b)| ((t, a), b)).collect();
    if dense {
        for block in Plan::new(profile).blocks() {
            for a in block.address..block.address + block.count {
                if block.table.is_bits() {
                    bits.entry((block.table, a)).or_insert(false);
                } else {
                    words.entry((block.table, a)).or_insert(0);
                }
            }
        }
    }
    let tables: Vec<String> = Table::ALL
        .iter()
        .map(|t| {
            let entries: Vec<String> = if t.is_bits() {
                bits.iter()
                    .filter(|((tt, _), _)| tt == t)
                    .map(|((_, a), b)| format!("\"{a}\":{}", u8::from(*b)))
                    .collect()
            } else {
                words
                    .iter()
                    .filter(|((tt, _), _)| tt == t)
                    .map(|((_, a), w)| format!("\"{a}\":{w}"))
                    .collect()
            };
            format!("\"{}\":{{{}}}", t.as_str(), entries.join(","))
        })
        .collect();
    format!("{{{}}}", tables.join(","))
}

fn start_peer(dir: &Path, mode: &str, at: &str, units: &[(u8, String)]) -> Peer {
    let body: Vec<String> = units.iter().map(|(u, j)| format!("\"{u}\":{j}")).collect();
    let file = dir.join("image.json");
    std::fs::write(&file, format!("{{{}}}", body.join(","))).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/modbus_server.py");
    let child = Command::new("python3")
        .args([script, mode, at, file.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 with pymodbus (scripts/install-test-deps.sh installs it)");
    Peer(child)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn source(toml_text: &str) -> ModbusSource {
    let config: ModbusSourceConfig = toml::from_str(toml_text).unwrap();
    ModbusSource::new(&config).unwrap()
}

fn find<'a>(readings: &'a [Reading], dev: &str, name: &str) -> &'a Reading {
    readings
        .iter()
        .find(|r| r.dev == dev && r.name == name)
        .unwrap_or_else(|| panic!("no reading {dev}/{name}"))
}

fn stat(readings: &[Reading], dev: &str, q: &str) -> f64 {
    let dev = format!("modbus/{dev}");
    readings
        .iter()
        .find(|r| r.src == "agent" && r.dev == dev && r.q == q)
        .unwrap_or_else(|| panic!("no self reading {dev}/{q}"))
        .value
        .unwrap()
}

/// Polls until `ready` holds of the latest reading of every series (the peer
/// may still be starting, and a device not due is not read), at most 15 s.
async fn poll_until(source: &mut ModbusSource, ready: impl Fn(&[Reading]) -> bool) -> Vec<Reading> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut latest: std::collections::BTreeMap<(String, String), Reading> = Default::default();
    loop {
        for r in source.poll().await.unwrap().readings {
            latest.insert((r.dev.clone(), r.name.clone()), r);
        }
        let readings: Vec<Reading> = latest.values().cloned().collect();
        if ready(&readings) {
            return readings;
        }
        assert!(
            Instant::now() < deadline,
            "peer never answered: {readings:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn known(readings: &[Reading], dev: &str, name: &str) -> bool {
    readings
        .iter()
        .any(|r| r.dev == dev && r.name == name && r.value.is_some())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_two_ups_units_behind_one_tcp_address() {
    let dir = tempfile::tempdir().unwrap();
    let apc = profile("apc-smart-ups");
    let healthy = apc.default_image().unwrap();
    let mut on_battery = healthy.clone();
    apc.encode("on_battery", &SimValue::Number(1.0), &mut on_battery)
        .unwrap();
    apc.encode("input_acceptable", &SimValue::Number(0.0), &mut on_battery)
        .unwrap();
    apc.encode(
        "battery_runtime_remaining",
        &SimValue::Number(900.0),
        &mut on_battery,
    )
    .unwrap();
    let port = free_port();
    let _peer = start_peer(
        dir.path(),
        "--tcp",
        &format!("127.0.0.1:{port}"),
        &[
            (1, unit_json(&apc, &healthy, true)),
            (2, unit_json(&apc, &on_battery, true)),
        ],
    );
    let mut src = source(&format!(
        r#"
        interval = "1s"
        [[devices]]
        name = "ups-a"
        address = "tcp://127.0.0.1:{port}"
        unit = 1
        profile = "apc-smart-ups"
        [[devices]]
        name = "ups-b"
        address = "tcp://127.0.0.1:{port}"
        unit = 2
        profile = "apc-smart-ups"
        "#
    ));
    let r = poll_until(&mut src, |r| {
        known(r, "ups-a", "on_battery") && known(r, "ups-b", "on_battery")
    })
    .await;
    let a = |name| find(&r, "ups-a", name);
    assert_eq!(
        (a("on_battery").value, a("on_battery").state),
        (Some(0.0), ReadingState::Ok)
    );
    assert_eq!(a("on_battery").q, "ups_on_battery");
    assert_eq!(a("on_battery").labels["nut"], "ups.status:OB");
    assert_eq!(a("input_acceptable").value, Some(1.0));
    assert_eq!(a("battery_charge").value, Some(1.0));
    assert_eq!(a("battery_runtime_remaining").value, Some(1800.0));
    assert_eq!(a("output_real_power_pct").value, Some(0.35));
    assert_eq!(a("on_battery").src, "modbus");
    let b = |name| find(&r, "ups-b", name);
    assert_eq!(
        (b("on_battery").value, b("on_battery").state),
        (Some(1.0), ReadingState::Warning)
    );
    assert_eq!(
        (b("input_acceptable").value, b("input_acceptable").state),
        (Some(0.0), ReadingState::Warning)
    );
    assert_eq!(b("battery_runtime_remaining").value, Some(900.0));
    for dev in ["ups-a", "ups-b"] {
        assert_eq!(stat(&r, dev, "agent_poll_success"), 1.0);
        assert_eq!(stat(&r, dev, "agent_modbus_exceptions_total"), 0.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_refusing_reads_across_gaps_gets_its_plan_split() {
    let dir = tempfile::tempdir().unwrap();
    let apc = profile("apc-smart-ups");
    let port = free_port();
    // Only the profile's own registers exist: the planned reads over gaps
    // are answered with exception 2 until the source has split them.
    let _peer = start_peer(
        dir.path(),
        "--tcp",
        &format!("127.0.0.1:{port}"),
        &[(1, unit_json(&apc, &apc.default_image().unwrap(), false))],
    );
    let mut src = source(&format!(
        "[[devices]]\nname = \"ups\"\naddress = \"tcp://127.0.0.1:{port}\"\nprofile = \"apc-smart-ups\"\n"
    ));
    let r = poll_until(&mut src, |r| known(r, "ups", "on_battery")).await;
    let unknown: Vec<&str> = r
        .iter()
        .filter(|r| r.dev == "ups" && r.value.is_none())
        .map(|r| r.name.as_str())
        .collect();
    assert!(
        unknown.is_empty(),
        "still unknown after splitting: {unknown:?}"
    );
    assert!(stat(&r, "ups", "agent_modbus_exceptions_total") > 0.0);
    assert_eq!(find(&r, "ups", "battery_charge").value, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceptions_leave_readings_unknown_while_the_device_answers() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // A unit that maps no input registers at all: every read is refused.
    let _peer = start_peer(
        dir.path(),
        "--tcp",
        &format!("127.0.0.1:{port}"),
        &[(1, "{\"holding\":{\"0\":1}}".to_owned())],
    );
    let mut src = source(&format!(
        "[[devices]]\nname = \"probe\"\naddress = \"tcp://127.0.0.1:{port}\"\nprofile = \"generic-xy-md02\"\n"
    ));
    let r = poll_until(&mut src, |r| {
        r.iter().any(|x| {
            x.dev == "modbus/probe" && x.q == "agent_modbus_exceptions_total" && x.value > Some(0.0)
        })
    })
    .await;
    let t = find(&r, "probe", "temperature");
    assert_eq!((t.value, t.state), (None, ReadingState::Unknown));
    assert_eq!(
        stat(&r, "probe", "agent_poll_success"),
        1.0,
        "the device answered"
    );
    // One refused block, split in two, both halves refused.
    assert_eq!(stat(&r, "probe", "agent_modbus_exceptions_total"), 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_gives_unknown_readings_and_backs_off() {
    let port = free_port();
    let mut src = source(&format!(
        "[[devices]]\nname = \"gone\"\naddress = \"tcp://127.0.0.1:{port}\"\nprofile = \"generic-xy-md02\"\ninterval = \"5s\"\n"
    ));
    let r = src.poll().await.unwrap().readings;
    assert_eq!(find(&r, "gone", "temperature").state, ReadingState::Unknown);
    assert_eq!(stat(&r, "gone", "agent_poll_success"), 0.0);
    assert_eq!(stat(&r, "gone", "agent_poll_errors_total"), 1.0);
    // Not due again before its interval: the next poll reads nothing of it.
    let r = src.poll().await.unwrap().readings;
    assert!(r.is_empty(), "{r:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_a_probe_over_rtu_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let md02 = profile("generic-xy-md02");
    let mut image = md02.default_image().unwrap();
    md02.encode("temperature", &SimValue::Number(-7.5), &mut image)
        .unwrap();
    let port = free_port();
    let _peer = start_peer(
        dir.path(),
        "--rtu-tcp",
        &format!("127.0.0.1:{port}"),
        &[(5, unit_json(&md02, &image, true))],
    );
    let mut src = source(&format!(
        "[[devices]]\nname = \"probe\"\naddress = \"rtu+tcp://127.0.0.1:{port}\"\nunit = 5\nprofile = \"generic-xy-md02\"\ntimeout = \"500ms\"\n"
    ));
    let r = poll_until(&mut src, |r| known(r, "probe", "temperature")).await;
    assert_eq!(find(&r, "probe", "temperature").value, Some(-7.5));
    assert_eq!(find(&r, "probe", "relative_humidity").value, Some(0.45));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_units_share_one_rtu_bus_and_a_dead_one_does_not_stall_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let pty = pty_pair(dir.path());
    let apc = profile("apc-smart-ups");
    let md02 = profile("generic-xy-md02");
    // Units 1 (UPS) and 3 (probe) answer; unit 2 is configured but dead.
    let _peer = start_peer(
        dir.path(),
        "--rtu",
        pty.device_end.to_str().unwrap(),
        &[
            (1, unit_json(&apc, &apc.default_image().unwrap(), true)),
            (3, unit_json(&md02, &md02.default_image().unwrap(), true)),
        ],
    );
    let bus = format!(
        "rtu://{}?baud=9600&parity=N&stop=1",
        pty.agent_end.display()
    );
    let mut src = source(&format!(
        r#"
        interval = "1s"
        [[devices]]
        name = "ups"
        address = "{bus}"
        unit = 1
        profile = "apc-smart-ups"
        timeout = "1s"
        [[devices]]
        name = "dead"
        address = "{bus}"
        unit = 2
        profile = "generic-xy-md02"
        timeout = "300ms"
        [[devices]]
        name = "probe"
        address = "{bus}"
        unit = 3
        profile = "generic-xy-md02"
        timeout = "1s"
        "#
    ));
    let r = poll_until(&mut src, |r| {
        known(r, "ups", "on_battery") && known(r, "probe", "temperature")
    })
    .await;
    assert_eq!(find(&r, "ups", "battery_charge").value, Some(1.0));
    assert_eq!(find(&r, "ups", "on_battery").value, Some(0.0));
    assert_eq!(find(&r, "probe", "temperature").value, Some(22.5));
    let dead = find(&r, "dead", "temperature");
    assert_eq!((dead.value, dead.state), (None, ReadingState::Unknown));
    assert_eq!(stat(&r, "dead", "agent_poll_success"), 0.0);
    assert!(stat(&r, "dead", "agent_poll_timeouts_total") >= 1.0);
    // The dead unit costs one request timeout per poll, not more.
    assert!(stat(&r, "dead", "agent_poll_duration_seconds") < 0.9);
    assert_eq!(stat(&r, "probe", "agent_poll_success"), 1.0);
}
