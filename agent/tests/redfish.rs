#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
//! The redfish source against real Redfish servers: sushy-static (sushy-tools)
//! serving DMTF's published mockups from `../shared/testdata` over TLS, and the
//! small session-counting server of `support/redfish.rs` for what sushy does
//! not do (credentials, sessions, `$expand`, broken answers).

#[path = "support/redfish.rs"]
mod peers;
#[path = "support/sushy.rs"]
mod sushy;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use peers::{Fault, redfish_server};
use sitewatch_agent::source::{
    Poll,
    redfish::{RedfishSource, config::RedfishSourceConfig, logout_all},
};
use sitewatch_protocol::{Reading, ReadingState};
use sushy::{certs, copy_tree, edit, fingerprint, sushy, sushy_present};

/// Skips (passes) when sushy-static or openssl is not installed.
macro_rules! require_sushy {
    () => {
        if !sushy_present() {
            println!(
                "SKIPPED: sushy-static or openssl not installed (scripts/install-test-deps.sh)"
            );
            return;
        }
    };
}

fn mockups() -> Option<PathBuf> {
    sitewatch_shared_testdata::dir("redfish/dmtf-mockups-2025.4", "DMTF Redfish mockups")
}

fn expected_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/redfish")
}

fn source(toml_text: &str) -> RedfishSource {
    let config: RedfishSourceConfig = toml::from_str(toml_text).unwrap();
    config.validate().unwrap();
    RedfishSource::new(&config).unwrap()
}

fn endpoint(name: &str, url: &str, extra: &str) -> String {
    format!("[[endpoints]]\nname = \"{name}\"\nurl = \"{url}\"\n{extra}\n")
}

fn password_file(dir: &Path, password: &str) -> PathBuf {
    let p = dir.join(format!("pw-{password}"));
    std::fs::write(&p, format!("{password}\n")).unwrap();
    p
}

fn of<'a>(readings: &'a [Reading], dev: &str) -> Vec<&'a Reading> {
    readings
        .iter()
        .filter(|r| r.src == "redfish" && r.dev == dev)
        .collect()
}

fn stat<'a>(readings: &'a [Reading], dev: &str, q: &str) -> &'a Reading {
    readings
        .iter()
        .find(|r| r.src == "agent" && r.dev == format!("redfish/{dev}") && r.q == q)
        .unwrap_or_else(|| panic!("no {q} for {dev}"))
}

fn find<'a>(
    readings: &'a [Reading],
    dev: &str,
    name: &str,
    label: Option<(&str, &str)>,
) -> Option<&'a Reading> {
    of(readings, dev).into_iter().find(|r| {
        r.name == name && label.is_none_or(|(k, v)| r.labels.get(k).map(String::as_str) == Some(v))
    })
}

/// One line per reading, sorted: `name q value state k=v,...`.
fn render(readings: &[&Reading]) -> String {
    let mut lines: Vec<String> = readings
        .iter()
        .map(|r| {
            let labels: Vec<String> = r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let value = r
                .value
                .map_or_else(|| "null".to_owned(), |v| format!("{v}"));
            format!(
                "{} {} {} {} {}",
                r.name,
                r.q,
                value,
                r.state.as_str(),
                labels.join(",")
            )
        })
        .collect();
    lines.sort();
    lines.join("\n") + "\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mockup_reads_from_sushy_static_as_its_expected_file() {
    require_sushy!();
    let Some(mockups) = mockups() else { return };
    let certs = certs();
    let mut names: Vec<String> = std::fs::read_dir(&mockups)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            e.file_type()
                .unwrap()
                .is_dir()
                .then(|| e.file_name().into_string().unwrap())
        })
        .collect();
    names.sort();
    assert_eq!(names.len(), 4, "{names:?}");
    let mut mismatches = Vec::new();
    for name in &names {
        let server = sushy(&mockups.join(name), &certs);
        let mut src = source(&endpoint(
            name,
            &format!("https://127.0.0.1:{}", server.port),
            &format!("ca_file = \"{}\"", certs.ca.display()),
        ));
        let polled = src.poll().await.unwrap().readings;
        assert_eq!(
            stat(&polled, name, "agent_poll_success").value,
            Some(1.0),
            "{name}: {:?}",
            stat(&polled, name, "agent_poll_success")
        );
        let got = render(&of(&polled, name));
        let file = expected_dir().join(format!("{name}.expected"));
        if std::env::var_os("REDFISH_WRITE_EXPECTED").is_some() {
            std::fs::write(&file, &got).unwrap();
        }
        let want = std::fs::read_to_string(&file).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (every mockup needs its expected file)",
                file.display()
            )
        });
        if got != want {
            mismatches.push(format!("{name}:\n--- want\n{want}--- got\n{got}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rack_server_without_its_subsystems_and_sensors_reads_through_legacy_thermal_and_power()
{
    require_sushy!();
    let Some(mockups) = mockups() else { return };
    let certs = certs();
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("legacy");
    copy_tree(&mockups.join("public-rackmount1"), &tree);
    edit(&tree, "Chassis/1U", |c| {
        let c = c.as_object_mut().unwrap();
        c.remove("ThermalSubsystem");
        c.remove("PowerSubsystem");
        c.remove("Sensors");
    });
    let server = sushy(&tree, &certs);
    let mut src = source(&endpoint(
        "old",
        &format!("https://127.0.0.1:{}", server.port),
        &format!("ca_file = \"{}\"", certs.ca.display()),
    ));
    let r = src.poll().await.unwrap().readings;
    assert_eq!(stat(&r, "old", "agent_poll_success").value, Some(1.0));
    let readings = of(&r, "old");
    // Supplies from Power.PowerSupplies, fans and temperatures from Thermal.
    let psus: Vec<_> = readings.iter().filter(|r| r.q == "psu_ok").collect();
    assert!(!psus.is_empty(), "{}", render(&readings));
    assert!(readings.iter().any(|r| r.q == "fan_ok"));
    let cpu = readings.iter().find(|r| r.name == "CPU1 Temp").unwrap();
    assert_eq!(
        (cpu.q.as_str(), cpu.value),
        ("temperature_celsius", Some(41.0))
    );
    // CPU2 Temp is Disabled: no reading, never a zero.
    assert!(!readings.iter().any(|r| r.name == "CPU2 Temp"));
    assert!(
        !readings.iter().any(|r| r.name == "IntakeTemp"),
        "no Sensors were read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_supply_turned_critical_reads_psu_ok_0_and_a_hot_cpu_turns_critical() {
    require_sushy!();
    let Some(mockups) = mockups() else { return };
    let certs = certs();
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("rack");
    copy_tree(&mockups.join("public-rackmount1"), &tree);
    let server = sushy(&tree, &certs);
    let mut src = source(&format!(
        "interval = \"3s\"\ntimeout = \"3s\"\n{}",
        endpoint(
            "r1",
            &format!("https://127.0.0.1:{}", server.port),
            &format!("ca_file = \"{}\"", certs.ca.display())
        )
    ));
    let r = src.poll().await.unwrap().readings;
    let psu = find(&r, "r1", "power_supply", Some(("psu", "Bay1"))).unwrap();
    assert_eq!((psu.value, psu.state), (Some(1.0), ReadingState::Warning));
    let cpu = find(&r, "r1", "CPU1Temp", None).unwrap();
    assert_eq!(cpu.state, ReadingState::Warning);

    edit(&tree, "Chassis/1U/PowerSubsystem/PowerSupplies/Bay1", |p| {
        p["Status"]["Health"] = "Critical".into();
    });
    edit(&tree, "Chassis/1U/Sensors/CPU1Temp", |s| {
        // Past UpperCritical; the BMC's own Health still says Warning.
        let critical = s["Thresholds"]["UpperCritical"]["Reading"]
            .as_f64()
            .unwrap();
        s["Reading"] = (critical + 3.0).into();
    });
    tokio::time::sleep(Duration::from_millis(3050)).await;
    let r = src.poll().await.unwrap().readings;
    let psu = find(&r, "r1", "power_supply", Some(("psu", "Bay1"))).unwrap();
    assert_eq!((psu.value, psu.state), (Some(0.0), ReadingState::Critical));
    let cpu = find(&r, "r1", "CPU1Temp", None).unwrap();
    assert_eq!(cpu.state, ReadingState::Critical, "{cpu:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_certificate_is_accepted_and_another_pin_is_a_tls_error() {
    require_sushy!();
    let Some(mockups) = mockups() else { return };
    let certs = certs();
    let server = sushy(&mockups.join("public-power-shelf"), &certs);
    let url = format!("https://127.0.0.1:{}", server.port);
    let pin = fingerprint(&certs.cert);
    let wrong = "00:".repeat(31) + "00";
    let mut src = source(&format!(
        "{}{}{}",
        endpoint("pinned", &url, &format!("pinned_sha256 = \"{pin}\"")),
        endpoint("other-pin", &url, &format!("pinned_sha256 = \"{wrong}\"")),
        endpoint("no-ca", &url, ""),
    ));
    let r = src.poll().await.unwrap().readings;
    assert_eq!(stat(&r, "pinned", "agent_poll_success").value, Some(1.0));
    assert!(find(&r, "pinned", "power_supply", None).is_some());
    for dev in ["other-pin", "no-ca"] {
        let failed = stat(&r, dev, "agent_poll_success");
        assert_eq!(
            (failed.value, failed.labels["error"].as_str()),
            (Some(0.0), "tls"),
            "{dev}"
        );
        assert!(of(&r, dev).is_empty(), "{dev}");
    }
}

const USER: &str = "sitewatch";
const PASSWORD: &str = "s3cret-ro";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_session_per_endpoint_is_reused_recreated_after_a_401_and_deleted_on_stop() {
    let Some(mockups) = mockups() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pw = password_file(dir.path(), PASSWORD);
    let server = redfish_server(mockups.join("public-power-shelf"), USER, PASSWORD, true).await;
    let url = format!("http://127.0.0.1:{}", server.port);
    let auth = format!(
        "username = \"{USER}\"\npassword_file = \"{}\"",
        pw.display()
    );
    let mut src = source(&format!(
        "interval = \"2s\"\ntimeout = \"2s\"\n{}{}",
        endpoint("a", &url, &auth),
        endpoint("b", &url, &auth),
    ));
    for _ in 0..3 {
        let r = src.poll().await.unwrap().readings;
        for dev in ["a", "b"] {
            assert_eq!(
                stat(&r, dev, "agent_poll_success").value,
                Some(1.0),
                "{dev}"
            );
        }
        tokio::time::sleep(Duration::from_millis(2050)).await;
    }
    let (created, deleted, live, _) = server.snapshot();
    assert_eq!(
        (created, deleted, live),
        (2, 0, 2),
        "one session per endpoint, reused"
    );

    // The BMC forgets its sessions (timeout, reset): 401, then a new one.
    server.expire_sessions();
    let r = src.poll().await.unwrap().readings;
    for dev in ["a", "b"] {
        assert_eq!(
            stat(&r, dev, "agent_poll_success").value,
            Some(1.0),
            "{dev}"
        );
        assert_eq!(
            stat(&r, dev, "agent_redfish_sessions_created_total").value,
            Some(2.0)
        );
    }
    let (created, _, live, _) = server.snapshot();
    assert_eq!((created, live), (4, 2));

    logout_all(Duration::from_secs(2)).await;
    let (created, deleted, live, _) = server.snapshot();
    assert_eq!(
        (created, deleted, live),
        (4, 2, 0),
        "no session left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_an_auth_error_naming_the_endpoint() {
    let Some(mockups) = mockups() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = redfish_server(mockups.join("public-power-shelf"), USER, PASSWORD, true).await;
    let url = format!("http://127.0.0.1:{}", server.port);
    for mode in ["session", "basic"] {
        let config: RedfishSourceConfig = toml::from_str(&endpoint(
            "shelf-7",
            &url,
            &format!(
                "username = \"{USER}\"\npassword_file = \"{}\"\nauth = \"{mode}\"",
                password_file(dir.path(), "wrong").display()
            ),
        ))
        .unwrap();
        let mut e = sitewatch_agent::source::redfish::Endpoint::new(
            &config.endpoints[0],
            config.rediscover,
        )
        .unwrap();
        let read = sitewatch_agent::device::Device::read(&mut e).await;
        let error = read.error.unwrap();
        assert_eq!(error.kind, "auth", "{mode}: {error:?}");
        assert!(
            error.message.contains("\"shelf-7\"")
                && error
                    .message
                    .contains("refused the credentials of user \"sitewatch\""),
            "{mode}: {}",
            error.message
        );
    }
    assert_eq!(server.snapshot().2, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_a_500_and_a_truncated_body_are_failed_reads_not_panics() {
    let Some(mockups) = mockups() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pw = password_file(dir.path(), PASSWORD);
    let server = redfish_server(mockups.join("public-rackmount1"), USER, PASSWORD, false).await;
    let url = format!("http://127.0.0.1:{}", server.port);
    let mut src = source(&format!(
        "interval = \"2s\"\ntimeout = \"2s\"\n{}",
        endpoint(
            "r",
            &url,
            &format!(
                "username = \"{USER}\"\npassword_file = \"{}\"\nrequest_timeout = \"1s\"",
                pw.display()
            )
        )
    ));
    let r = src.poll().await.unwrap().readings;
    assert_eq!(stat(&r, "r", "agent_poll_success").value, Some(1.0));
    let path = "/redfish/v1/Chassis/1U/Sensors/IntakeTemp";
    for (fault, kind) in [
        (Fault::Malformed, "malformed"),
        (Fault::Status500, "status"),
        (Fault::Truncated, "malformed"),
    ] {
        server.fault(path, Some(fault.clone()));
        tokio::time::sleep(Duration::from_millis(2050)).await;
        let r = src.poll().await.unwrap().readings;
        let failed = stat(&r, "r", "agent_poll_success");
        assert_eq!(
            (failed.value, failed.labels["error"].as_str()),
            (Some(0.0), kind),
            "{fault:?}"
        );
        // The rest of the read still arrived; the broken sensor is unknown.
        let intake = find(&r, "r", "IntakeTemp", None).unwrap();
        assert_eq!(
            (intake.value, intake.state),
            (None, ReadingState::Unknown),
            "{fault:?}"
        );
        assert_eq!(
            find(&r, "r", "ExhaustTemp", None).unwrap().value,
            Some(40.5)
        );
        server.fault(path, None);
        // The backoff skips the next read or two; wait them out.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            tokio::time::sleep(Duration::from_millis(2050)).await;
            let r = src.poll().await.unwrap().readings;
            if stat(&r, "r", "agent_poll_success").value == Some(1.0) {
                assert_eq!(find(&r, "r", "IntakeTemp", None).unwrap().value, Some(24.8));
                break;
            }
            assert!(Instant::now() < deadline, "no recovery after {fault:?}");
        }
    }
    logout_all(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_never_delays_another() {
    let Some(mockups) = mockups() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pw = password_file(dir.path(), PASSWORD);
    let server = redfish_server(mockups.join("public-power-shelf"), USER, PASSWORD, true).await;
    let proxy = peers::slow_proxy(server.port, Duration::from_secs(5)).await;
    let auth = format!(
        "username = \"{USER}\"\npassword_file = \"{}\"\nrequest_timeout = \"1s\"",
        pw.display()
    );
    let mut src = source(&format!(
        "interval = \"3s\"\ntimeout = \"3s\"\n{}{}",
        endpoint("fast", &format!("http://127.0.0.1:{}", server.port), &auth),
        endpoint("slow", &format!("http://127.0.0.1:{}", proxy.port), &auth),
    ));
    let r = src.poll().await.unwrap().readings;
    assert_eq!(stat(&r, "fast", "agent_poll_success").value, Some(1.0));
    let fast = stat(&r, "fast", "agent_poll_duration_seconds")
        .value
        .unwrap();
    assert!(fast < 1.5, "the fast endpoint took {fast} s");
    assert!(find(&r, "fast", "power_supply", None).is_some());
    let slow = stat(&r, "slow", "agent_poll_success");
    assert_eq!(slow.value, Some(0.0));
    assert!(of(&r, "slow").is_empty());
    logout_all(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expand_reads_the_same_sensors_in_fewer_requests() {
    let Some(mockups) = mockups() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pw = password_file(dir.path(), PASSWORD);
    let mut rendered = BTreeMap::new();
    for expand in [true, false] {
        let server =
            redfish_server(mockups.join("public-rackmount1"), USER, PASSWORD, expand).await;
        let mut src = source(&endpoint(
            "r",
            &format!("http://127.0.0.1:{}", server.port),
            &format!(
                "username = \"{USER}\"\npassword_file = \"{}\"",
                pw.display()
            ),
        ));
        let r = src.poll().await.unwrap().readings;
        assert_eq!(stat(&r, "r", "agent_poll_success").value, Some(1.0));
        let requests = server.state.lock().unwrap().requests;
        let expands = server.state.lock().unwrap().expand_requests;
        assert_eq!(expands > 0, expand);
        rendered.insert(expand, (render(&of(&r, "r")), requests));
        logout_all(Duration::from_secs(2)).await;
    }
    assert_eq!(rendered[&true].0, rendered[&false].0);
    assert!(
        rendered[&true].1 + 30 < rendered[&false].1,
        "{} vs {} requests",
        rendered[&true].1,
        rendered[&false].1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_makes_the_agent_delete_the_session_of_every_endpoint() {
    let Some(mockups) = mockups() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pw = password_file(dir.path(), PASSWORD);
    let server = redfish_server(mockups.join("public-power-shelf"), USER, PASSWORD, true).await;
    let url = format!("http://127.0.0.1:{}", server.port);
    let auth = format!(
        "username = \"{USER}\"\npassword_file = \"{}\"",
        pw.display()
    );
    // No broker: the agent buffers and keeps polling.
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "site = \"lab\"\nhost = \"gw\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\n\
             [sources.host]\nenabled = false\n[sources.redfish]\ninterval = \"1s\"\ntimeout = \"1s\"\n{}{}",
            sushy::free_port(),
            endpoint("a", &url, &auth).replace("[[endpoints]]", "[[sources.redfish.endpoints]]"),
            endpoint("b", &url, &auth).replace("[[endpoints]]", "[[sources.redfish.endpoints]]"),
        ),
    )
    .unwrap();
    let mut agent = std::process::Command::new(env!("CARGO_BIN_EXE_sitewatch-agent"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.snapshot().0 < 2 {
        assert!(
            Instant::now() < deadline,
            "the agent made no sessions: {:?}",
            server.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(agent.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = agent.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status:?}");
    let (created, deleted, live, _) = server.snapshot();
    assert_eq!((created, deleted, live), (2, 2, 0), "a session left behind");
}
