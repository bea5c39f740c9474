//! End to end over SNMP: net-snmp's snmpd serves an RFC 1628 UPS (a
//! pass_persist script over a recording the test rewrites) -> the agent's
//! snmp source -> the collector: the UPS going on battery at a site with no
//! generator raises L3 `power`, exactly as a Modbus UPS does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::{
    net::UdpSocket,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use sitewatch_tests::{
    drill::{Stack, agent_config, start_agent},
    process::Proc,
    scrape, wait,
};

const ON_MAINS: &str = "1.3.6.1.2.1.33.1.2.1.0|2|2
1.3.6.1.2.1.33.1.2.3.0|2|40
1.3.6.1.2.1.33.1.2.4.0|2|100
1.3.6.1.2.1.33.1.4.1.0|2|3
";
const ON_BATTERY: &str = "1.3.6.1.2.1.33.1.2.1.0|2|2
1.3.6.1.2.1.33.1.2.3.0|2|35
1.3.6.1.2.1.33.1.2.4.0|2|96
1.3.6.1.2.1.33.1.4.1.0|2|5
";

fn write(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn snmpd(dir: &Path, recording: &Path) -> (Proc, u16) {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/tests/peers/snmprec_pass.py");
    let conf = dir.join("snmpd.conf");
    std::fs::write(
        &conf,
        format!(
            "agentAddress udp:127.0.0.1:{port}\nrocommunity public 127.0.0.1\n\
             pass_persist .1.3.6.1.2.1.33 /usr/bin/python3 {} {}\n",
            script.display(),
            recording.display()
        ),
    )
    .unwrap();
    let persist = dir.join("snmp-persist");
    std::fs::create_dir_all(&persist).unwrap();
    let mut cmd = Command::new("snmpd");
    cmd.args(["-f", "-Lo", "-C", "-c"])
        .arg(&conf)
        .arg("-p")
        .arg(dir.join("snmpd.pid"))
        .env("SNMP_PERSISTENT_DIR", &persist)
        .env("MIBS", "");
    let proc = Proc::spawn("snmpd", cmd, dir);
    wait::until(Duration::from_secs(15), "snmpd answering", || {
        let out = Command::new("snmpget")
            .args(["-v2c", "-c", "public", "-t", "0.3", "-r", "0", "-Oqv"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("1.3.6.1.2.1.33.1.4.1.0")
            .stderr(Stdio::null())
            .output()
            .ok()?;
        (out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "3").then_some(())
    });
    (proc, port)
}

fn power_signal(http_port: u16) -> Option<serde_json::Value> {
    let body = scrape::get(http_port, "/api/v1/signals")?.body;
    let signals: Vec<serde_json::Value> = serde_json::from_str(&body).ok()?;
    signals
        .into_iter()
        .find(|s| s["cause"] == "power" && s["level"] == "L3" && s["severity"] == "critical")
}

#[test]
fn an_snmp_ups_on_battery_with_no_generator_raises_l3_power() {
    if !sitewatch_tests::have("snmpd") || !sitewatch_tests::have("snmpget") {
        println!("SKIPPED: snmpd/snmp not installed (scripts/install-test-deps.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("ups.snmprec");
    write(&recording, ON_MAINS);
    let (_snmpd, port) = snmpd(dir.path(), &recording);
    let stack = Stack::start(
        dir.path(),
        "[signals]\nclear_after = \"3s\"\n[signals.power]\ngenerator_start_grace = \"2s\"\n",
    );
    let extra = format!(
        "[sources.snmp]\ninterval = \"1s\"\ntimeout = \"1s\"\n\
         [[sources.snmp.devices]]\nname = \"ups-a\"\naddress = \"127.0.0.1:{port}\"\nprofile = \"ups-mib\"\ntimeout = \"300ms\"\n"
    );
    let _agent = start_agent(
        dir.path(),
        "gw-01",
        &agent_config("sn1", "gw-01", stack.mqtt_port, &extra),
    );
    let ups = [
        ("site", "sn1"),
        ("host", "gw-01"),
        ("src", "snmp"),
        ("dev", "ups-a"),
    ];
    stack.collector.wait_for_value(
        Duration::from_secs(20),
        "sitewatch_ups_on_battery",
        &ups,
        0.0,
    );
    assert!(power_signal(stack.collector.http_port).is_none());
    write(&recording, ON_BATTERY);
    stack.collector.wait_for_value(
        Duration::from_secs(5),
        "sitewatch_ups_on_battery",
        &ups,
        1.0,
    );
    // The 2 s start grace, then the alarm.
    let signal = wait::until(Duration::from_secs(10), "L3 power", || {
        power_signal(stack.collector.http_port)
    });
    assert_eq!(signal["subject"], "sn1");
    let evidence = signal["evidence"].to_string();
    assert!(evidence.contains("ups-a"), "{evidence}");
    // Mains back: the signal clears.
    write(&recording, ON_MAINS);
    wait::until(Duration::from_secs(15), "L3 power cleared", || {
        power_signal(stack.collector.http_port)
            .is_none()
            .then_some(())
    });
}
