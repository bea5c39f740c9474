#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
//! The nut source against Debian's own upsd: `dummy-ups` serving `.dev` files
//! edited at run time, `upsc` as the cross-check; hand-written responders
//! only for answers no real upsd sends (a line cut short, an unknown `ERR`).

#[path = "support/nut.rs"]
mod peers;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use peers::{DummyUps, Upsd};
use sitewatch_agent::source::{
    Poll, Section,
    nut::{NutSource, config::NutSourceConfig},
};
use sitewatch_protocol::{Reading, ReadingState};

/// A UPS on mains with every mapped variable (the `online-charging` case).
const ONLINE: &str = include_str!("nut/online-charging/ups.dev");

const USERS: &str = "[mon]\n  password = secret\n  upsmon primary\n";

fn source(toml_text: &str) -> NutSource {
    let config: NutSourceConfig = toml::from_str(toml_text).unwrap();
    config.validate().unwrap();
    NutSource::new(&config).unwrap()
}

fn server(name: &str, port: u16, extra: &str) -> String {
    format!("[[servers]]\nname = \"{name}\"\naddress = \"127.0.0.1:{port}\"\n{extra}\n")
}

fn find<'a>(readings: &'a [Reading], dev: &str, name: &str) -> &'a Reading {
    readings
        .iter()
        .find(|r| r.src == "nut" && r.dev == dev && r.name == name)
        .unwrap_or_else(|| panic!("no {dev} {name} in {readings:#?}"))
}

fn stat(readings: &[Reading], server: &str, q: &str) -> Reading {
    readings
        .iter()
        .find(|r| r.src == "agent" && r.dev == format!("nut/{server}") && r.q == q)
        .cloned()
        .unwrap_or_else(|| panic!("no {q} for {server}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_every_mapped_variable_of_a_dummy_ups_as_upsc_does() {
    require_nut!();
    let upsd = Upsd::start(
        &[DummyUps {
            name: "ups1",
            dev: ONLINE,
        }],
        USERS,
    );
    let mut src = source(&server("gw", upsd.port, ""));
    let r = src.poll().await.unwrap().readings;
    let dev = "ups1@gw";
    let (ok, upsc, _) = peers::upsc_all(upsd.port, "ups1");
    assert!(ok);
    // Every mapped variable, against what upsc reads from the same upsd.
    let expect: &[(&str, &str, f64, Option<&str>)] = &[
        ("battery.charge", "ups_battery_charge_ratio", 0.01, None),
        ("battery.runtime", "ups_battery_runtime_seconds", 1.0, None),
        ("battery.voltage", "voltage_volts", 1.0, Some("battery")),
        (
            "battery.temperature",
            "temperature_celsius",
            1.0,
            Some("battery"),
        ),
        ("input.voltage", "voltage_volts", 1.0, Some("input")),
        ("input.frequency", "frequency_hertz", 1.0, Some("input")),
        ("output.voltage", "voltage_volts", 1.0, Some("output")),
        ("output.frequency", "frequency_hertz", 1.0, Some("output")),
        ("output.current", "current_amperes", 1.0, Some("output")),
        ("ups.load", "ups_load_ratio", 0.01, None),
        ("ups.realpower", "power_watts", 1.0, Some("output")),
        ("ups.temperature", "temperature_celsius", 1.0, Some("ups")),
    ];
    for (var, q, scale, part) in expect {
        let reading = find(&r, dev, var);
        let want: f64 = upsc[*var].parse().unwrap();
        assert_eq!(reading.q, *q, "{var}");
        let got = reading.value.unwrap();
        assert!((got - want * scale).abs() < 1e-9, "{var}: {got} vs {want}");
        assert_eq!(reading.labels["nut"], *var);
        assert_eq!(
            reading.labels.get("part").map(String::as_str),
            *part,
            "{var}"
        );
    }
    let flags: BTreeMap<&str, (f64, &str)> = [
        ("online", 1.0, "OL"),
        ("on_battery", 0.0, "OB"),
        ("battery_low", 0.0, "LB"),
        ("battery_replace", 0.0, "RB"),
        ("charging", 1.0, "CHRG"),
        ("on_bypass", 0.0, "BYPASS"),
        ("overload", 0.0, "OVER"),
        ("forced_shutdown", 0.0, "FSD"),
    ]
    .into_iter()
    .map(|(n, v, w)| (n, (v, w)))
    .collect();
    for (name, (value, word)) in &flags {
        let f = find(&r, dev, name);
        assert_eq!(f.value, Some(*value), "{name}");
        assert_eq!(f.labels["nut"], format!("ups.status:{word}"));
    }
    assert_eq!(find(&r, dev, "on_battery").q, "ups_on_battery");
    assert_eq!(find(&r, dev, "battery_low").q, "ups_battery_low");
    // Descriptive variables and thresholds are not counted as unknown (the
    // `junk-values` case counts the unknown ones).
    assert_eq!(
        stat(&r, "gw", "agent_nut_unknown_variables_total").value,
        Some(0.0)
    );
    assert_eq!(stat(&r, "gw", "agent_poll_success").value, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_dev_file_from_online_to_on_battery_to_low_within_an_interval() {
    require_nut!();
    let upsd = Upsd::start(
        &[DummyUps {
            name: "ups1",
            dev: "ups.status: OL\nbattery.charge: 100\nbattery.runtime: 1800\n",
        }],
        USERS,
    );
    let interval = Duration::from_secs(1);
    let mut src = source(&format!(
        "interval = \"1s\"\ntimeout = \"1s\"\n{}",
        server("gw", upsd.port, "")
    ));
    let r = src.poll().await.unwrap().readings;
    assert_eq!(find(&r, "ups1@gw", "on_battery").value, Some(0.0));
    for (status, on_battery, low) in [("OB", 1.0, 0.0), ("OB LB", 1.0, 1.0), ("OL CHRG", 0.0, 0.0)]
    {
        upsd.set_dev(
            "ups1",
            &format!("ups.status: {status}\nbattery.charge: 40\nbattery.runtime: 200\n"),
        );
        // Once upsd serves it, the source follows within one interval.
        upsd.wait_for("ups1", "ups.status", |s| s == status);
        let served = Instant::now();
        loop {
            let started = Instant::now();
            let r = src.poll().await.unwrap().readings;
            if find(&r, "ups1@gw", "on_battery").value == Some(on_battery)
                && find(&r, "ups1@gw", "battery_low").value == Some(low)
            {
                assert_eq!(find(&r, "ups1@gw", "battery.runtime").value, Some(200.0));
                break;
            }
            assert!(
                served.elapsed() <= interval + Duration::from_millis(500),
                "{status} not read {:?} after upsd served it",
                served.elapsed()
            );
            tokio::time::sleep(interval.saturating_sub(started.elapsed())).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_a_clear_counted_error_and_right_ones_read() {
    require_nut!();
    let upsd = Upsd::start(
        &[DummyUps {
            name: "ups1",
            dev: ONLINE,
        }],
        USERS,
    );
    let good = upsd.path().join("good.password");
    let bad = upsd.path().join("bad.password");
    std::fs::write(&good, "secret\n").unwrap();
    std::fs::write(&bad, "guess\n").unwrap();
    let mut src = source(&format!(
        "{}{}",
        server(
            "right",
            upsd.port,
            &format!("username = \"mon\"\npassword_file = \"{}\"", good.display())
        ),
        server(
            "wrong",
            upsd.port,
            &format!("username = \"mon\"\npassword_file = \"{}\"", bad.display())
        ),
    ));
    let r = src.poll().await.unwrap().readings;
    assert_eq!(find(&r, "ups1@right", "battery.charge").value, Some(0.97));
    assert_eq!(stat(&r, "right", "agent_poll_success").value, Some(1.0));
    let failed = stat(&r, "wrong", "agent_poll_success");
    assert_eq!(
        (failed.value, failed.labels["error"].as_str()),
        (Some(0.0), "credentials")
    );
    assert_eq!(
        stat(&r, "wrong", "agent_nut_server_errors_total").value,
        Some(1.0)
    );
    assert!(!r.iter().any(|x| x.dev == "ups1@wrong" && x.value.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_upsd_is_a_counted_connect_error_and_its_ups_reads_unknown() {
    require_nut!();
    let mut upsd = Upsd::start(
        &[DummyUps {
            name: "ups1",
            dev: ONLINE,
        }],
        USERS,
    );
    let mut src = source(&format!(
        "interval = \"1s\"\ntimeout = \"1s\"\n{}",
        server("gw", upsd.port, "")
    ));
    let r = src.poll().await.unwrap().readings;
    assert_eq!(find(&r, "ups1@gw", "on_battery").value, Some(0.0));
    upsd.stop_upsd();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r = src.poll().await.unwrap().readings;
    let failed = stat(&r, "gw", "agent_poll_success");
    assert_eq!(
        (failed.value, failed.labels["error"].as_str()),
        (Some(0.0), "connect")
    );
    assert_eq!(stat(&r, "gw", "agent_poll_errors_total").value, Some(1.0));
    let ob = find(&r, "ups1@gw", "on_battery");
    assert_eq!((ob.value, ob.state), (None, ReadingState::Unknown));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_upsd_that_never_answers_never_delays_the_first() {
    require_nut!();
    let upsd = Upsd::start(
        &[DummyUps {
            name: "ups1",
            dev: ONLINE,
        }],
        USERS,
    );
    let (_silent, silent_port) = peers::silent_server();
    let mut src = source(&format!(
        "interval = \"2s\"\ntimeout = \"2s\"\n{}{}",
        server("alive", upsd.port, ""),
        server("silent", silent_port, "timeout = \"1s\""),
    ));
    let r = src.poll().await.unwrap().readings;
    assert_eq!(find(&r, "ups1@alive", "battery.charge").value, Some(0.97));
    let alive = stat(&r, "alive", "agent_poll_duration_seconds")
        .value
        .unwrap();
    assert!(alive < 0.4, "the alive server's read took {alive} s");
    let dead = stat(&r, "silent", "agent_poll_success");
    assert_eq!(
        (dead.value, dead.labels["error"].as_str()),
        (Some(0.0), "timeout")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_that_is_no_number_is_an_unknown_reading_and_counted() {
    require_nut!();
    let upsd = Upsd::start(
        &[DummyUps {
            name: "ups1",
            dev: "ups.status: OL\nbattery.charge: plenty\nbattery.runtime: 1800\n",
        }],
        USERS,
    );
    let mut src = source(&server("gw", upsd.port, ""));
    let r = src.poll().await.unwrap().readings;
    let charge = find(&r, "ups1@gw", "battery.charge");
    assert_eq!((charge.value, charge.state), (None, ReadingState::Unknown));
    assert_eq!(find(&r, "ups1@gw", "battery.runtime").value, Some(1800.0));
    assert_eq!(
        stat(&r, "gw", "agent_nut_malformed_values_total").value,
        Some(1.0)
    );
    assert_eq!(stat(&r, "gw", "agent_poll_success").value, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_answers_are_counted_failed_reads_never_a_panic() {
    const LIST_UPS: &str = "BEGIN LIST UPS\nUPS u \"d\"\nEND LIST UPS\n";
    // A VAR line cut short by the close.
    let cut = peers::scripted_server(vec![
        ("LIST UPS", LIST_UPS),
        ("LIST VAR", "BEGIN LIST VAR u\nVAR u ups.status \"O"),
    ]);
    // An error code RFC 9271 does not define.
    let unknown_err = peers::scripted_server(vec![
        ("LIST UPS", LIST_UPS),
        ("LIST VAR", "ERR GREMLINS-IN-THE-WIRES\n"),
    ]);
    // A list that never closes but for garbage, then the close.
    let garbage = peers::scripted_server(vec![
        (
            "LIST UPS",
            "BEGIN LIST UPS\nUPS u \"d\" extra words\nUPS \"unclosed\nEND LIST UPS\n",
        ),
        ("LIST VAR", "OK\n"),
    ]);
    let mut src = source(&format!(
        "{}{}{}",
        server("cut", cut, ""),
        server("unknown_err", unknown_err, ""),
        server("garbage", garbage, ""),
    ));
    {
        let r = src.poll().await.unwrap().readings;
        for s in ["cut", "unknown_err", "garbage"] {
            let p = stat(&r, s, "agent_poll_success");
            assert_eq!(
                (p.value, p.labels["error"].as_str()),
                (Some(0.0), "malformed"),
                "{s}"
            );
            assert!(
                stat(&r, s, "agent_nut_malformed_answers_total").value >= Some(1.0),
                "{s}"
            );
        }
    }
}

/// Skips (passes) without NSS's tools, unless `SITEWATCH_REQUIRE_SHARED` is set.
macro_rules! require_nss {
    () => {
        if !peers::nss_tools_present() {
            assert!(
                std::env::var_os("SITEWATCH_REQUIRE_SHARED").is_none(),
                "certutil/pk12util not installed (libnss3-tools, scripts/install-test-deps.sh)"
            );
            println!("SKIPPED: libnss3-tools not installed (scripts/install-test-deps.sh)");
            return;
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_a_upsd_over_starttls_trusting_only_its_ca_and_never_falls_back_to_the_clear() {
    require_nut!();
    require_nss!();
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = peers::make_certs(dir.path(), "upsd");
    let (other_ca, _, _) = peers::make_certs(dir.path(), "other");
    let db = peers::nss_db(dir.path(), &ca, Some((&cert, &key)));
    let tls = Upsd::start_with(
        &[DummyUps {
            name: "ups1",
            dev: ONLINE,
        }],
        USERS,
        &format!("CERTPATH {}\nCERTIDENT \"upsd\" \"dbpass\"\n", db.display()),
    );
    let plain = Upsd::start(
        &[DummyUps {
            name: "ups1",
            dev: ONLINE,
        }],
        USERS,
    );
    let password = dir.path().join("password");
    std::fs::write(&password, "secret\n").unwrap();
    let with_ca = |ca: &std::path::Path| {
        format!(
            "tls_ca = \"{}\"\nusername = \"mon\"\npassword_file = \"{}\"",
            ca.display(),
            password.display()
        )
    };
    let mut src = source(&format!(
        "{}{}{}",
        server("tls", tls.port, &with_ca(&ca)),
        server("wrong_ca", tls.port, &with_ca(&other_ca)),
        server("no_tls", plain.port, &with_ca(&ca)),
    ));
    let r = src.poll().await.unwrap().readings;
    // Over TLS, with a login: read.
    assert_eq!(find(&r, "ups1@tls", "battery.charge").value, Some(0.97));
    assert_eq!(stat(&r, "tls", "agent_poll_success").value, Some(1.0));
    // A certificate from another CA, and a server that offers no TLS: a
    // clear `tls` error, and nothing read (no password sent in the clear).
    for s in ["wrong_ca", "no_tls"] {
        let p = stat(&r, s, "agent_poll_success");
        assert_eq!(
            (p.value, p.labels["error"].as_str()),
            (Some(0.0), "tls"),
            "{s}"
        );
        assert!(!r.iter().any(|x| x.dev == format!("ups1@{s}")), "{s}");
    }
}

/// `tests/nut/<case>/`: `ups.dev` served by dummy-ups through upsd must read
/// as `expected.json` (readings by name, and the counters).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_folder_reads_as_its_expected_readings() {
    require_nut!();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nut");
    let mut cases: Vec<(String, String)> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let dev = std::fs::read_to_string(p.join("ups.dev")).ok()?;
            Some((p.file_name()?.to_str()?.to_owned(), dev))
        })
        .collect();
    cases.sort();
    assert!(cases.len() >= 4, "{cases:?}");
    let upses: Vec<DummyUps<'_>> = cases
        .iter()
        .map(|(name, dev)| DummyUps { name, dev })
        .collect();
    let upsd = Upsd::start(&upses, USERS);
    let bless = std::env::var_os("SITEWATCH_BLESS").is_some();
    for (name, _) in &cases {
        // One source per case: its counters are the case's alone.
        let mut src = source(&server("gw", upsd.port, &format!("ups = [\"{name}\"]")));
        let r = src.poll().await.unwrap().readings;
        let mut readings: Vec<serde_json::Value> = r
            .iter()
            .filter(|x| x.src == "nut")
            .map(|x| {
                assert_eq!(x.dev, format!("{name}@gw"));
                let mut v = serde_json::to_value(x).unwrap();
                let o = v.as_object_mut().unwrap();
                o.remove("src");
                o.remove("dev");
                v
            })
            .collect();
        readings.sort_by_key(|v| v["name"].as_str().unwrap_or_default().to_owned());
        let counter = |q: &str| stat(&r, "gw", q).value.unwrap_or(-1.0);
        let got = serde_json::json!({
            "readings": readings,
            "unknown_variables": counter("agent_nut_unknown_variables_total"),
            "malformed_values": counter("agent_nut_malformed_values_total"),
        });
        let path = root.join(name).join("expected.json");
        if bless {
            std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
            continue;
        }
        let want: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            got,
            want,
            "{name}: got\n{}",
            serde_json::to_string_pretty(&got).unwrap()
        );
    }
}
