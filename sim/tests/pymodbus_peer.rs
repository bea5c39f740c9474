#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The simulator served over Modbus TCP, read by an independent peer (a
//! pymodbus client): what it reads is the profile's encoding, and faults
//! injected through the control interface change what it reads.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sitewatch_modbus_profile::{Plan, Profile, RegisterImage, Table, shipped};

struct Sim {
    child: Child,
    modbus_port: u16,
    control: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn port_of(line: &str) -> u16 {
    line.rsplit(':').next().unwrap().trim().parse().unwrap()
}

/// Starts `sitewatch-sim modbus` on free ports and waits for it to say where.
fn start(profile: &str) -> Sim {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sitewatch-sim"))
        .args([
            "modbus",
            "--profile",
            profile,
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let modbus = lines.next().unwrap().unwrap();
    let control = lines.next().unwrap().unwrap();
    assert!(modbus.starts_with("modbus listening on "), "{modbus}");
    assert!(control.starts_with("control listening on "), "{control}");
    Sim {
        child,
        modbus_port: port_of(&modbus),
        control: control
            .trim_start_matches("control listening on ")
            .to_owned(),
    }
}

impl Sim {
    fn control(&self, command: &str) -> String {
        let mut stream = TcpStream::connect(&self.control).unwrap();
        stream.write_all(format!("{command}\n").as_bytes()).unwrap();
        let mut reply = String::new();
        BufReader::new(stream).read_line(&mut reply).unwrap();
        reply.trim_end().to_owned()
    }

    /// Reads `table:address:count` blocks with pymodbus.
    fn pymodbus(&self, unit: u8, timeout_s: f64, blocks: &[String]) -> Value {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/modbus_read.py");
        let out = Command::new("python3")
            .arg(script)
            .args([
                "127.0.0.1",
                &self.modbus_port.to_string(),
                &unit.to_string(),
                &timeout_s.to_string(),
            ])
            .args(blocks)
            .output()
            .expect("python3 with pymodbus (scripts/install-test-deps.sh installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Reads every block of the profile's plan into an image, as the agent will.
    fn read_plan(&self, profile: &Profile) -> RegisterImage {
        let plan = Plan::new(profile);
        let specs: Vec<String> = plan
            .blocks()
            .iter()
            .map(|b| format!("{}:{}:{}", b.table.as_str(), b.address, b.count))
            .collect();
        let unit = profile.device.default_unit.unwrap_or(1);
        let read = self.pymodbus(unit, 2.0, &specs);
        let mut image = RegisterImage::new();
        for (block, spec) in plan.blocks().iter().zip(&specs) {
            let values = read[spec]
                .as_array()
                .unwrap_or_else(|| panic!("{spec}: {}", read[spec]));
            let values: Vec<u64> = values.iter().map(|v| v.as_u64().unwrap()).collect();
            if block.table.is_bits() {
                let bits: Vec<bool> = values.iter().map(|v| *v != 0).collect();
                image.set_bits(block.table, block.address, &bits);
            } else {
                let words: Vec<u16> = values.iter().map(|v| *v as u16).collect();
                image.set_words(block.table, block.address, &words);
            }
        }
        image
    }
}

fn value(profile: &Profile, image: &RegisterImage, name: &str) -> Option<f64> {
    profile.decode(image).value(name).unwrap().value
}

#[test]
fn pymodbus_reads_the_profile_encoding_of_every_shipped_profile() {
    for s in shipped::SHIPPED {
        let profile = Profile::from_toml(s.text, s.path).unwrap();
        let sim = start(s.name);
        let read = sim.read_plan(&profile);
        let served = profile.default_image().unwrap();
        for (table, address, word) in served.all_words() {
            assert_eq!(
                read.word(table, address),
                Some(word),
                "{}: {table:?} {address}",
                s.name
            );
        }
        for (table, address, bit) in served.all_bits() {
            assert_eq!(
                read.bit(table, address),
                Some(bit),
                "{}: {table:?} {address}",
                s.name
            );
        }
        assert_eq!(profile.decode(&read), profile.decode(&served), "{}", s.name);
    }
}

#[test]
fn apc_healthy_values_then_mains_lost_as_pymodbus_sees_them() {
    let profile = shipped::load("apc-smart-ups").unwrap().unwrap();
    let sim = start("apc-smart-ups");
    let image = sim.read_plan(&profile);
    assert_eq!(value(&profile, &image, "on_battery"), Some(0.0));
    assert_eq!(value(&profile, &image, "input_acceptable"), Some(1.0));
    assert_eq!(value(&profile, &image, "battery_charge"), Some(1.0));
    assert_eq!(
        value(&profile, &image, "battery_runtime_remaining"),
        Some(1800.0)
    );
    assert_eq!(profile.decode(&image).info["model"], "Smart-UPS 1500");

    let reply = sim.control("mains_lost");
    assert!(reply.starts_with("ok "), "{reply}");
    let image = sim.read_plan(&profile);
    assert_eq!(value(&profile, &image, "on_battery"), Some(1.0));
    assert_eq!(value(&profile, &image, "input_acceptable"), Some(0.0));
    assert_eq!(
        value(&profile, &image, "battery_runtime_remaining"),
        Some(1200.0)
    );

    assert_eq!(sim.control("battery_low").split(' ').next(), Some("ok"));
    let image = sim.read_plan(&profile);
    assert_eq!(value(&profile, &image, "shutdown_imminent"), Some(1.0));

    assert_eq!(sim.control("set battery_charge 0.5"), "ok");
    assert_eq!(sim.control("get battery_charge"), "ok 0.5 ok");
    assert_eq!(sim.control("healthy"), "ok");
    let image = sim.read_plan(&profile);
    assert_eq!(value(&profile, &image, "on_battery"), Some(0.0));
}

#[test]
fn injected_exceptions_and_silence_reach_the_peer() {
    let sim = start("generic-xy-md02");
    let block = vec!["input:1:2".to_string()];
    assert_eq!(
        sim.pymodbus(1, 2.0, &block)["input:1:2"],
        serde_json::json!([225, 450])
    );
    // A read of nothing the device maps: illegal data address.
    let far = vec!["input:100:2".to_string()];
    assert_eq!(sim.pymodbus(1, 2.0, &far)["input:100:2"]["exception"], 2);

    assert_eq!(sim.control("exception 4"), "ok");
    assert_eq!(sim.pymodbus(1, 2.0, &block)["input:1:2"]["exception"], 4);

    assert_eq!(sim.control("silent"), "ok");
    let read = sim.pymodbus(1, 0.5, &block);
    assert!(read["input:1:2"].get("error").is_some(), "{read}");

    assert_eq!(sim.control("healthy"), "ok");
    assert_eq!(
        sim.pymodbus(1, 2.0, &block)["input:1:2"],
        serde_json::json!([225, 450])
    );
}

#[test]
fn a_slow_device_answers_late() {
    let sim = start("generic-xy-md02");
    assert_eq!(sim.control("slow 400"), "ok");
    let started = Instant::now();
    let read = sim.pymodbus(1, 3.0, &["input:1:2".to_string()]);
    assert_eq!(read["input:1:2"], serde_json::json!([225, 450]));
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[test]
fn scenarios_drive_generator_and_cooling_profiles() {
    let gen_profile = shipped::load("dse-gencomm").unwrap().unwrap();
    let sim = start("dse-gencomm");
    assert!(sim.control("generator_fails_to_start").starts_with("ok "));
    let image = sim.read_plan(&gen_profile);
    assert_eq!(value(&gen_profile, &image, "fail_to_start"), Some(1.0));
    assert_eq!(value(&gen_profile, &image, "mains_present"), Some(0.0));
    assert_eq!(value(&gen_profile, &image, "engine_running"), Some(0.0));
    assert!(sim.control("generator_running").starts_with("ok "));
    let image = sim.read_plan(&gen_profile);
    assert_eq!(value(&gen_profile, &image, "engine_running"), Some(1.0));
    assert_eq!(value(&gen_profile, &image, "fail_to_start"), Some(0.0));
    // A UPS scenario on a generator profile is refused with a reason.
    assert!(sim.control("cooling_alarm").starts_with("error "));

    let crac = shipped::load("vertiv-liebert-icom").unwrap().unwrap();
    let sim = start("vertiv-liebert-icom");
    assert!(sim.control("cooling_alarm").starts_with("ok "));
    let image = sim.read_plan(&crac);
    assert_eq!(value(&crac, &image, "loss_of_air_flow"), Some(1.0));
    assert_eq!(value(&crac, &image, "supply_air_temperature"), Some(29.5));
    assert_eq!(image.bit(Table::Discrete, 24), Some(true));
}

#[test]
fn pymodbus_reads_the_simulator_over_rtu_through_a_socat_pty_pair() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("sim-tty"), dir.path().join("client-tty"));
    let mut socat = Command::new("socat")
        .args([
            format!("pty,raw,echo=0,link={}", a.display()),
            format!("pty,raw,echo=0,link={}", b.display()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(a.exists() && b.exists()) {
        assert!(Instant::now() < deadline, "no pty pair");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_sitewatch-sim"))
        .args([
            "modbus",
            "--profile",
            "generic-xy-md02",
            "--rtu",
            a.to_str().unwrap(),
            "--unit",
            "4",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines
            .next()
            .unwrap()
            .unwrap()
            .starts_with("modbus rtu serving on")
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/modbus_read.py");
    // The server opens its end just after announcing it: retry briefly.
    let mut read = Value::Null;
    for _ in 0..20 {
        let out = Command::new("python3")
            .args([
                script,
                "--rtu",
                b.to_str().unwrap(),
                "4",
                "0.5",
                "input:1:2",
            ])
            .output()
            .unwrap();
        read = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if read["input:1:2"].is_array() {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = socat.kill();
    let _ = socat.wait();
    assert_eq!(read["input:1:2"], serde_json::json!([225, 450]), "{read}");
}

#[test]
fn the_simulated_site_serves_five_devices() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sitewatch-sim"))
        .args([
            "site",
            "--listen-base",
            "127.0.0.1:0",
            "--control-base",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let announced: Vec<String> = (0..10).map(|_| lines.next().unwrap().unwrap()).collect();
    let _ = child.kill();
    let _ = child.wait();
    for name in [
        "ups-a",
        "genset",
        "crac-1",
        "probe-cold-aisle",
        "probe-hot-aisle",
    ] {
        assert!(
            announced
                .iter()
                .any(|l| l.starts_with(&format!("{name} modbus listening on 127.0.0.1:"))),
            "{announced:?}"
        );
    }
}
