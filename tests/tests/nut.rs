//! Network UPS Tools both ways, end to end, with Debian's own programs:
//!
//! - the agent's upsd facade serves a UPS it reads from `sitewatch-sim` over
//!   Modbus: `upsc` lists its variables; `upsmon` (with the shipped
//!   `packaging/examples/nut/upsmon.conf`, its `SHUTDOWNCMD` a script that
//!   records the call) shuts down when the UPS is on battery and low and not
//!   before, and at once when the facade raises FSD;
//! - the README's power cut, second by second: the collector's L3 `power`
//!   and the servers' shutdown from one simulated cut;
//! - a UPS read from a real upsd (`dummy-ups`) on battery with no generator
//!   raises L3 `power` at the collector, like one read over Modbus.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

#[path = "../../agent/tests/support/nut.rs"]
mod peers;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use peers::{DummyUps, Upsd, upsc_all, upsc_var};
use serde_json::Value;
use sitewatch_tests::{
    drill::{Stack, agent_config, start_agent},
    free_port,
    process::Proc,
    scrape,
    sim::control_at,
    sitewatch::bin,
    wait,
};

const SITE: &str = "bj1";
const USERS: &str = "[upsmon-servers]\n  password = servers-secret\n  upsmon secondary\n\
                     [upsmon-primary]\n  password = primary-secret\n  upsmon primary\n";

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/examples/nut")
        .join(name)
}

/// A UPS on its own `sitewatch-sim modbus`: (process, modbus port, control).
fn sim_ups(dir: &Path) -> (Proc, u16, SocketAddr) {
    let mut cmd = Command::new(bin("sitewatch-sim"));
    cmd.args([
        "modbus",
        "--profile",
        "apc-smart-ups",
        "--listen",
        "127.0.0.1:0",
        "--control",
        "127.0.0.1:0",
    ]);
    let proc = Proc::spawn("sim-ups", cmd, dir);
    let (port, control) = wait::until(Duration::from_secs(10), "the simulated UPS", || {
        let log = proc.log();
        let address = |what: &str| {
            log.lines()
                .find_map(|l| l.strip_prefix(&format!("{what} listening on ")))
                .and_then(|a| a.trim().parse::<SocketAddr>().ok())
        };
        Some((address("modbus")?.port(), address("control")?))
    });
    (proc, port, control)
}

/// The gateway agent: the simulated UPS over Modbus, the facade on `nut_port`
/// with `fsd` as its `[nut_server.fsd]` body.
fn gateway(dir: &Path, mqtt_port: u16, modbus_port: u16, nut_port: u16, fsd: &str) -> Proc {
    gateway_with(dir, mqtt_port, modbus_port, nut_port, fsd, "")
}

/// The same with more tables after `[nut_server.fsd]` (`[nut_server.tls]`).
fn gateway_with(
    dir: &Path,
    mqtt_port: u16,
    modbus_port: u16,
    nut_port: u16,
    fsd: &str,
    more: &str,
) -> Proc {
    let users = dir.join("nut-upsd.users");
    std::fs::write(&users, USERS).unwrap();
    let extra = format!(
        "[sources.modbus]\ninterval = \"1s\"\n\n[[sources.modbus.devices]]\nname = \"ups-a\"\n\
         address = \"tcp://127.0.0.1:{modbus_port}\"\nprofile = \"apc-smart-ups\"\ntimeout = \"500ms\"\n\n\
         [nut_server]\nlisten = [\"127.0.0.1:{nut_port}\"]\nusers_file = \"{}\"\nstale_after = \"5s\"\n\n\
         [[nut_server.ups]]\nname = \"ups-a\"\ndevice = \"modbus/ups-a\"\ndescription = \"bj1 room 1, feed A\"\n\n\
         [nut_server.fsd]\n{fsd}\n{more}\n",
        users.display()
    );
    let mut agent = start_agent(
        dir,
        "gw-01",
        &agent_config(SITE, "gw-01", mqtt_port, &extra),
    );
    wait::until(Duration::from_secs(15), "the facade serving ups-a", || {
        assert!(agent.running(), "the agent exited:\n{}", agent.log());
        upsc_var(nut_port, "ups-a", "ups.status").filter(|s| s == "OL")
    });
    agent
}

/// upsmon keeps its pid file in the compiled-in /run/nut (whatever
/// NUT_ALTPIDPATH says) and refuses to start while the pid there lives: one
/// upsmon at a time in this binary.
static ONE_UPSMON: Mutex<()> = Mutex::new(());

/// A running upsmon, stopped with SIGTERM (so that it removes its pid file)
/// before the next one starts.
struct Upsmon {
    proc: peers::Proc,
    _turn: MutexGuard<'static, ()>,
}

impl Drop for Upsmon {
    fn drop(&mut self) {
        // Its own process group: the monitoring child it forks goes too.
        let group = format!("-{}", self.proc.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.proc.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    }
}

/// Debian's upsmon watching `ups-a` on the facade as a secondary, with the
/// shipped upsmon.conf: only the address, the commands and the timings
/// replaced. Returns upsmon and the file its SHUTDOWNCMD writes.
fn upsmon(dir: &Path, nut_port: u16) -> (Upsmon, PathBuf) {
    upsmon_with(dir, nut_port, "")
}

/// The same with more upsmon.conf lines (`CERTPATH`, `FORCESSL`).
fn upsmon_with(dir: &Path, nut_port: u16, more: &str) -> (Upsmon, PathBuf) {
    let turn = ONE_UPSMON
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let conf_dir = dir.join("upsmon");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let record = conf_dir.join("shutdown-called");
    let script = conf_dir.join("shutdown.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ndate +%s.%N >> {}\n", record.display()),
    )
    .unwrap();
    use std::os::unix::{fs::PermissionsExt, process::CommandExt};
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let shipped = std::fs::read_to_string(example("upsmon.conf")).unwrap();
    let mut conf = String::new();
    for line in shipped.lines() {
        let replaced = match line.split_whitespace().next() {
            Some("MONITOR") => line
                .replace("gw-01.bj1.example:3493", &format!("127.0.0.1:{nut_port}"))
                .replace("CHANGE-ME", "servers-secret"),
            Some("SHUTDOWNCMD") => format!("SHUTDOWNCMD \"{}\"", script.display()),
            Some("POWERDOWNFLAG") => {
                format!("POWERDOWNFLAG {}", conf_dir.join("killpower").display())
            }
            Some("POLLFREQ") => "POLLFREQ 1".into(),
            Some("POLLFREQALERT") => "POLLFREQALERT 1".into(),
            Some("FINALDELAY") => "FINALDELAY 0".into(),
            Some("HOSTSYNC") => "HOSTSYNC 2".into(),
            Some("RUN_AS_USER") => "RUN_AS_USER root".into(),
            _ => line.to_owned(),
        };
        conf.push_str(&replaced);
        conf.push('\n');
    }
    assert!(
        conf.contains(&format!(
            "MONITOR ups-a@127.0.0.1:{nut_port} 1 upsmon-servers servers-secret secondary"
        )),
        "{conf}"
    );
    conf.push_str(more);
    let path = conf_dir.join("upsmon.conf");
    std::fs::write(&path, conf).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The previous upsmon of this binary is gone (the lock), so a pid file
    // naming no upsmon is stale (a pid reused since would make this one refuse
    // to start); one naming a live upsmon is the machine's own: hands off.
    let pid_file = Path::new("/run/nut/upsmon.pid");
    if let Ok(pid) = std::fs::read_to_string(pid_file) {
        // A zombie (a killed upsmon child that init has not reaped, in a
        // container) is as dead as a missing process.
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap_or_default();
        let live_upsmon = status
            .lines()
            .any(|l| l.split_whitespace().eq(["Name:", "upsmon"]))
            && !status
                .lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'));
        assert!(
            !live_upsmon,
            "this machine runs its own upsmon (pid {}): the test cannot start another",
            pid.trim()
        );
        let _ = std::fs::remove_file(pid_file);
    }
    let mut cmd = Command::new(peers::UPSMON);
    cmd.process_group(0);
    cmd.args(["-F", "-u", "root"])
        .env("NUT_CONFPATH", &conf_dir)
        .env("NUT_STATEPATH", &conf_dir)
        .env("NUT_ALTPIDPATH", &conf_dir);
    let mut proc = peers::Proc::spawn(cmd, conf_dir.join("upsmon.log"));
    // Logged in: the facade counts it.
    wait::until(Duration::from_secs(15), "upsmon logged in", || {
        assert!(
            proc.child.try_wait().unwrap().is_none(),
            "upsmon exited:\n{}",
            proc.log_text()
        );
        let answer = peers::converse(nut_port, &["GET NUMLOGINS ups-a"], 1);
        (answer.first().map(String::as_str) == Some("NUMLOGINS ups-a 1")).then_some(())
    });
    (Upsmon { proc, _turn: turn }, record)
}

fn called(record: &Path) -> bool {
    record.exists()
}

#[test]
fn upsc_lists_the_variables_of_a_ups_the_agent_reads_over_modbus() {
    if !peers::peers_present() {
        assert!(
            std::env::var_os("SITEWATCH_REQUIRE_SHARED").is_none(),
            "nut-client missing"
        );
        println!("SKIPPED: nut-server/nut-client not installed (scripts/install-test-deps.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_sim, modbus, control) = sim_ups(dir.path());
    let nut_port = free_port();
    let _agent = gateway(dir.path(), free_port(), modbus, nut_port, "");
    control_at(control, "set battery_runtime_remaining 1500");
    control_at(control, "set battery_charge 87");
    wait::until(Duration::from_secs(10), "the new runtime served", || {
        upsc_var(nut_port, "ups-a", "battery.runtime").filter(|v| v == "1500")
    });
    let (ok, vars, stderr) = upsc_all(nut_port, "ups-a");
    assert!(ok, "{stderr}");
    // What the simulated UPS holds, through Modbus, the profile and the facade.
    let sim = |point: &str| -> f64 {
        let reply = control_at(control, &format!("get {point}"));
        reply.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    assert_eq!(vars["ups.status"], "OL");
    assert_eq!(vars["device.type"], "ups");
    assert_eq!(vars["battery.runtime"], "1500");
    let charge: f64 = vars["battery.charge"].parse().unwrap();
    assert!(
        (charge - sim("battery_charge") * 100.0).abs() < 0.01,
        "{charge}"
    );
    for (var, point) in [
        ("battery.voltage", "battery_voltage"),
        ("battery.temperature", "battery_temperature"),
        ("output.current", "output_current"),
    ] {
        let served: f64 = vars[var].parse().unwrap();
        assert!((served - sim(point)).abs() < 0.01, "{var}: {served}");
    }
    // `upsc -l` and the description.
    let out = Command::new(peers::UPSC)
        .args(["-l", &format!("127.0.0.1:{nut_port}")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ups-a");
    assert_eq!(
        peers::converse(
            nut_port,
            &[
                "GET UPSDESC ups-a",
                "GET VAR ups-a no.such",
                "GET VAR ghost ups.status"
            ],
            3
        ),
        [
            "UPSDESC ups-a \"bj1 room 1, feed A\"",
            "ERR VAR-NOT-SUPPORTED",
            "ERR UNKNOWN-UPS"
        ]
    );
    // Wrong credentials are refused at LOGIN, as upsd does.
    assert_eq!(
        peers::converse(
            nut_port,
            &["USERNAME upsmon-servers", "PASSWORD guess", "LOGIN ups-a"],
            3
        ),
        ["OK", "OK", "ERR ACCESS-DENIED"]
    );
}

#[test]
fn upsmon_shuts_down_when_the_simulated_ups_is_on_battery_and_low_and_not_before() {
    if !peers::peers_present() {
        assert!(
            std::env::var_os("SITEWATCH_REQUIRE_SHARED").is_none(),
            "nut-client missing"
        );
        println!("SKIPPED: nut-server/nut-client not installed (scripts/install-test-deps.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_sim, modbus, control) = sim_ups(dir.path());
    let nut_port = free_port();
    let _agent = gateway(dir.path(), free_port(), modbus, nut_port, "");
    let (mut mon, record) = upsmon(dir.path(), nut_port);
    control_at(control, "mains_lost");
    wait::until(Duration::from_secs(10), "OB served", || {
        upsc_var(nut_port, "ups-a", "ups.status").filter(|s| s == "OB")
    });
    // On battery alone: upsmon waits (a generator may come, the battery holds).
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        !called(&record),
        "shut down on OB alone:\n{}",
        mon.proc.log_text()
    );
    assert!(
        mon.proc.child.try_wait().unwrap().is_none(),
        "upsmon exited:\n{}",
        mon.proc.log_text()
    );
    control_at(control, "battery_low");
    let low = Instant::now();
    wait::until(Duration::from_secs(15), "upsmon's SHUTDOWNCMD", || {
        called(&record).then_some(())
    });
    // Agent poll (1 s) + upsmon's POLLFREQALERT (1 s) + its FINALDELAY (0).
    assert!(
        low.elapsed() < Duration::from_secs(6),
        "{:?}",
        low.elapsed()
    );
    assert!(
        mon.proc.log_text().contains("ups-a"),
        "{}",
        mon.proc.log_text()
    );
}

#[test]
fn fsd_raised_by_the_facade_makes_upsmon_shut_down_at_once() {
    if !peers::peers_present() {
        assert!(
            std::env::var_os("SITEWATCH_REQUIRE_SHARED").is_none(),
            "nut-client missing"
        );
        println!("SKIPPED: nut-server/nut-client not installed (scripts/install-test-deps.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_sim, modbus, control) = sim_ups(dir.path());
    let nut_port = free_port();
    // mains_lost leaves 1200 s of runtime: under the 30 min threshold.
    let _agent = gateway(
        dir.path(),
        free_port(),
        modbus,
        nut_port,
        "runtime_below = \"30m\"\ngrace = \"2s\"",
    );
    let (_mon, record) = upsmon(dir.path(), nut_port);
    control_at(control, "mains_lost");
    let cut = Instant::now();
    wait::until(Duration::from_secs(15), "FSD served", || {
        upsc_var(nut_port, "ups-a", "ups.status").filter(|s| s.contains("FSD"))
    });
    let fsd_at = cut.elapsed();
    // Not before the grace: the battery is not low, only FSD says go.
    assert!(fsd_at >= Duration::from_secs(2), "{fsd_at:?}");
    assert_eq!(upsc_var(nut_port, "ups-a", "ups.status").unwrap(), "OB FSD");
    wait::until(Duration::from_secs(10), "upsmon's SHUTDOWNCMD", || {
        called(&record).then_some(())
    });
    assert!(
        cut.elapsed() - fsd_at < Duration::from_secs(4),
        "{:?}",
        cut.elapsed()
    );
}

#[test]
fn a_primary_raises_fsd_through_the_facade_and_a_secondary_cannot() {
    if !peers::peers_present() {
        assert!(
            std::env::var_os("SITEWATCH_REQUIRE_SHARED").is_none(),
            "nut-client missing"
        );
        println!("SKIPPED: nut-server/nut-client not installed (scripts/install-test-deps.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_sim, modbus, _control) = sim_ups(dir.path());
    let nut_port = free_port();
    let _agent = gateway(dir.path(), free_port(), modbus, nut_port, "");
    let (_mon, record) = upsmon(dir.path(), nut_port);
    assert_eq!(
        peers::converse(
            nut_port,
            &[
                "USERNAME upsmon-servers",
                "PASSWORD servers-secret",
                "LOGIN ups-a",
                "FSD ups-a"
            ],
            4
        ),
        ["OK", "OK", "OK", "ERR ACCESS-DENIED"]
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(!called(&record));
    let granted = peers::converse(
        nut_port,
        &[
            "USERNAME upsmon-primary",
            "PASSWORD primary-secret",
            "LOGIN ups-a",
            "PRIMARY ups-a",
            "FSD ups-a",
        ],
        5,
    );
    assert_eq!(
        granted,
        ["OK", "OK", "OK", "OK PRIMARY-GRANTED", "OK FSD-SET"]
    );
    wait::until(Duration::from_secs(10), "upsmon's SHUTDOWNCMD", || {
        called(&record).then_some(())
    });
    // A planned shutdown on mains: OL FSD.
    assert_eq!(upsc_var(nut_port, "ups-a", "ups.status").unwrap(), "OL FSD");
}

fn signals(stack: &Stack) -> Vec<Value> {
    scrape::get(stack.collector.http_port, "/api/v1/signals")
        .and_then(|r| serde_json::from_str(&r.body).ok())
        .unwrap_or_default()
}

fn l3_power(stack: &Stack) -> Option<Value> {
    signals(stack)
        .into_iter()
        .find(|s| s["level"] == "L3" && s["cause"] == "power")
}

#[test]
fn a_nut_ups_on_battery_with_no_generator_raises_l3_power_at_the_collector() {
    if !peers::peers_present() {
        assert!(
            std::env::var_os("SITEWATCH_REQUIRE_SHARED").is_none(),
            "nut-server missing"
        );
        println!("SKIPPED: nut-server/nut-client not installed (scripts/install-test-deps.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let upsd = Upsd::start(
        &[DummyUps {
            name: "ups",
            dev: "ups.status: OL\nbattery.charge: 100\nbattery.runtime: 1800\n",
        }],
        "",
    );
    let stack = Stack::start(
        dir.path(),
        "[signals]\nclear_after = \"3s\"\n[signals.power]\ngenerator_start_grace = \"2s\"\n",
    );
    let extra = format!(
        "[sources.nut]\ninterval = \"1s\"\ntimeout = \"1s\"\n\n[[sources.nut.servers]]\nname = \"nas\"\n\
         address = \"127.0.0.1:{}\"\n",
        upsd.port
    );
    let _agent = start_agent(
        dir.path(),
        "nas-01",
        &agent_config(SITE, "nas-01", stack.mqtt_port, &extra),
    );
    stack.wait_online(SITE, &["nas-01"]);
    stack.collector.wait_for(
        Duration::from_secs(15),
        "sitewatch_ups_on_battery",
        &[("site", SITE), ("host", "nas-01"), ("dev", "ups@nas")],
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(l3_power(&stack).is_none(), "an L3 with the UPS on mains");
    upsd.set_dev(
        "ups",
        "ups.status: OB\nbattery.charge: 90\nbattery.runtime: 1500\n",
    );
    let cut = Instant::now();
    let l3 = wait::until(Duration::from_secs(25), "L3 power", || l3_power(&stack));
    assert_eq!(l3["severity"], "critical", "{l3}");
    assert!(l3.to_string().contains("ups@nas"), "{l3}");
    // dummy-ups (2 s) + the agent (1 s) + the 2 s grace, and the pipeline.
    assert!(
        cut.elapsed() >= Duration::from_secs(2),
        "{:?}",
        cut.elapsed()
    );
}

#[test]
fn the_readme_power_cut_second_by_second() {
    if !peers::peers_present() {
        assert!(
            std::env::var_os("SITEWATCH_REQUIRE_SHARED").is_none(),
            "nut-client missing"
        );
        println!("SKIPPED: nut-server/nut-client not installed (scripts/install-test-deps.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_sim, modbus, control) = sim_ups(dir.path());
    let stack = Stack::start(
        dir.path(),
        "[signals]\nclear_after = \"3s\"\n[signals.power]\ngenerator_start_grace = \"2s\"\n",
    );
    let nut_port = free_port();
    // The walkthrough's policy, its times scaled down: FSD at 10 min of
    // runtime left once that has held for 2 s.
    let _agent = gateway(
        dir.path(),
        stack.mqtt_port,
        modbus,
        nut_port,
        "runtime_below = \"10m\"\ngrace = \"2s\"",
    );
    stack.wait_online(SITE, &["gw-01"]);
    let (_mon, record) = upsmon(dir.path(), nut_port);

    // t0: the utility goes. The UPS carries the load (20 min of runtime).
    control_at(control, "mains_lost");
    let t0 = Instant::now();
    // The collector: L3 power once the generator grace has passed with no
    // generator supplying.
    let l3 = wait::until(Duration::from_secs(20), "L3 power", || l3_power(&stack));
    assert_eq!(l3["severity"], "critical");
    let paged = t0.elapsed();
    assert!(paged >= Duration::from_secs(2), "{paged:?}");
    // The servers stay up: 20 min of runtime is above the threshold.
    assert!(!called(&record));
    // The runtime estimate falls to 8 min: under the threshold.
    control_at(control, "set battery_runtime_remaining 480");
    let t1 = Instant::now();
    wait::until(Duration::from_secs(15), "upsmon's SHUTDOWNCMD", || {
        called(&record).then_some(())
    });
    let shut = t1.elapsed();
    // Agent poll (1 s) + grace (2 s) + upsmon (1 s), with margin.
    assert!(
        shut >= Duration::from_secs(2) && shut < Duration::from_secs(8),
        "{shut:?}"
    );
    assert!(
        upsc_var(nut_port, "ups-a", "ups.status")
            .unwrap()
            .contains("FSD")
    );
}

#[test]
fn upsmon_forcing_tls_logs_in_to_the_facade_over_starttls_and_acts_on_fsd() {
    if !peers::peers_present() || !peers::nss_tools_present() {
        assert!(
            std::env::var_os("SITEWATCH_REQUIRE_SHARED").is_none(),
            "nut-client or libnss3-tools missing"
        );
        println!(
            "SKIPPED: nut-client or libnss3-tools not installed (scripts/install-test-deps.sh)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = peers::make_certs(dir.path(), "facade");
    let db = peers::nss_db(dir.path(), &ca, None);
    let (_sim, modbus, control) = sim_ups(dir.path());
    let nut_port = free_port();
    let _agent = gateway_with(
        dir.path(),
        free_port(),
        modbus,
        nut_port,
        "runtime_below = \"30m\"\ngrace = \"1s\"",
        &format!(
            "[nut_server.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    // FORCESSL: upsmon refuses a server that does not do TLS; CERTVERIFY: the
    // facade's certificate must chain to the CA in the NSS database.
    let (mon, record) = upsmon_with(
        dir.path(),
        nut_port,
        &format!("CERTPATH {}\nCERTVERIFY 1\nFORCESSL 1\n", db.display()),
    );
    let log = mon.proc.log_text();
    assert!(log.contains("SSL handshake done successfully"), "{log}");
    control_at(control, "mains_lost");
    wait::until(Duration::from_secs(15), "upsmon's SHUTDOWNCMD", || {
        called(&record).then_some(())
    });
    // The facade answers STARTTLS once; again inside TLS is refused as upsd does.
    assert_eq!(peers::converse(nut_port, &["STARTTLS"], 1), ["OK STARTTLS"]);
}
