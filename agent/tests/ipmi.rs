//! The `ipmi` source against OpenIPMI's `ipmi_sim`, compared with what
//! `ipmitool -I lanplus` reads from the same simulator.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use sitewatch_agent::{
    buffer::log::write_durably,
    config::{Config, Overrides},
    source::{Poll, Polled, SourceError, ipmi::IpmiSource},
};
use sitewatch_protocol::{Reading, ReadingState, Severity};
use support::ipmisim::{Board, IpmiSim, PASSWORD, USER, parse_sensor_table, testdata_present};

/// An ipmi source over the given simulators (name, simulator, password).
fn source(bmcs: &[(&str, &IpmiSim, &str)], state_dir: Option<&Path>, timeout: &str) -> IpmiSource {
    let mut toml = format!(
        "site = \"t\"\n[sources.ipmi]\ninterval = \"1s\"\ntimeout = \"{timeout}\"\ncommand_timeout = \"500ms\"\n"
    );
    if let Some(dir) = state_dir {
        toml.push_str(&format!("state_dir = {:?}\n", dir.display().to_string()));
    }
    for (name, sim, password) in bmcs {
        let pw = sim.dir().join(format!("{name}.password"));
        std::fs::write(&pw, format!("{password}\nignored second line\n")).unwrap();
        toml.push_str(&format!(
            "[[sources.ipmi.bmcs]]\nname = \"{name}\"\naddress = \"{}\"\nusername = \"{USER}\"\npassword_file = {:?}\n",
            sim.address(),
            pw.display().to_string()
        ));
    }
    let config = Config::parse(&toml, Path::new("test.toml"), &Overrides::default()).unwrap();
    IpmiSource::new(config.sources.ipmi.as_ref().unwrap()).unwrap()
}

async fn poll(source: &mut IpmiSource) -> Result<Polled, SourceError> {
    // What the scheduler does: the poll under the source's timeout.
    tokio::time::timeout(Duration::from_secs(30), source.poll())
        .await
        .unwrap()
}

/// A poll whose events every broker acknowledged: what the publisher then
/// does with its checkpoints (the SEL cursor file).
async fn poll_delivered(source: &mut IpmiSource) -> Result<Polled, SourceError> {
    let polled = poll(source).await?;
    for c in &polled.checkpoints {
        write_durably(&c.path, &c.contents).unwrap();
    }
    Ok(polled)
}

fn find<'a>(r: &'a [Reading], dev: &str, name: &str) -> &'a Reading {
    r.iter()
        .find(|r| r.dev == dev && r.name == name)
        .unwrap_or_else(|| panic!("no {dev}/{name} in {r:#?}"))
}

fn tool_state(status: &str) -> ReadingState {
    match status {
        "ok" => ReadingState::Ok,
        "nc" => ReadingState::Warning,
        "cr" | "nr" => ReadingState::Critical,
        "na" => ReadingState::Unknown,
        other => panic!("ipmitool status {other:?}"),
    }
}

/// Every analog reading of the agent equals ipmitool's value and state.
fn assert_same_as_ipmitool(sim: &IpmiSim, dev: &str, readings: &[Reading]) -> usize {
    let rows = parse_sensor_table(&sim.ipmitool(&["sensor"]));
    let mut compared = 0;
    for r in readings
        .iter()
        .filter(|r| r.dev == dev && r.name != "bmc" && r.name != "sweep")
    {
        let Some(row) = rows.iter().find(|row| row.name == r.name) else {
            continue; // chassis bits, SEL, DCMI: not in ipmitool's sensor table
        };
        if row.unit == "discrete" {
            continue;
        }
        let (ours, theirs) = (r.value.unwrap(), row.value.unwrap());
        // ipmitool prints three decimals.
        assert!(
            (ours - theirs).abs() <= 0.0006,
            "{}: agent {ours}, ipmitool {theirs}",
            r.name
        );
        assert_eq!(
            r.state,
            tool_state(&row.status),
            "{}: {r:?} vs {row:?}",
            r.name
        );
        compared += 1;
    }
    compared
}

#[test]
fn rig_starts_both_boards_and_changes_a_sensor_at_run_time() {
    if !testdata_present() {
        return;
    }
    let mut sim = IpmiSim::start(Board::Sim1);
    let rows = parse_sensor_table(&sim.ipmitool(&["sensor"]));
    let mb = rows.iter().find(|r| r.name == "MBTemp").unwrap();
    assert_eq!((mb.value, mb.status.as_str()), (Some(96.0), "ok"));
    sim.set_raw(1, 0x95);
    let rows = parse_sensor_table(&sim.ipmitool(&["sensor"]));
    let mb = rows.iter().find(|r| r.name == "MBTemp").unwrap();
    assert_eq!((mb.value, mb.status.as_str()), (Some(149.0), "cr"));
    assert!(
        sim.ipmitool(&["sel", "list"])
            .contains("Upper Critical going high")
    );

    let marvell = IpmiSim::start(Board::Marvell);
    let rows = parse_sensor_table(&marvell.ipmitool(&["sensor"]));
    assert!(
        rows.iter().filter(|r| r.name.starts_with("fan ")).count() == 8,
        "{rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_values_and_states_equal_ipmitool_sensor_by_sensor() {
    if !testdata_present() {
        return;
    }
    let mut marvell = IpmiSim::start(Board::Marvell);
    // Fans around their lower thresholds (26 raw = 1019.2 rpm critical, 38 =
    // 1489.6 non-critical), voltages in and out of range, PSU 1 present.
    for (sensor, raw) in [
        (0x70, 10),
        (0x71, 30),
        (0x72, 60),
        (0x73, 200),
        (3, 100),
        (4, 30),
        (5, 0xff),
        (1, 40),
        (2, 95),
    ] {
        marvell.set_raw(sensor, raw);
    }
    marvell.set_only_bit(8, 0, false);
    let mut sim1 = IpmiSim::start(Board::Sim1);
    sim1.set_raw(1, 0x75);
    let mut source = source(
        &[("marvell", &marvell, PASSWORD), ("sim1", &sim1, PASSWORD)],
        None,
        "5s",
    );
    let polled = poll(&mut source).await.unwrap();
    let r = &polled.readings;
    let compared = assert_same_as_ipmitool(&marvell, "marvell", r);
    // Every BMC-owned analog sensor: 5 switch, 6 PSU V/I/P, 8 fans.
    assert_eq!(compared, 2 + 3 + 6 + 8, "{r:#?}");
    assert_eq!(assert_same_as_ipmitool(&sim1, "sim1", r), 1);
    // States span ok, warning and critical.
    assert_eq!(find(r, "marvell", "fan 1").state, ReadingState::Critical);
    assert_eq!(find(r, "marvell", "fan 2").state, ReadingState::Warning);
    assert_eq!(find(r, "marvell", "fan 3").state, ReadingState::Ok);
    assert_eq!(find(r, "marvell", "fan 1").q, "fan_speed_rpm");
    assert_eq!(find(r, "marvell", "PSU1 power").q, "power_watts");
    assert_eq!(find(r, "marvell", "PSU1 current").q, "current_amperes");
    assert_eq!(find(r, "marvell", "12V Switch").q, "voltage_volts");
    assert_eq!(find(r, "sim1", "MBTemp").q, "temperature_celsius");
    assert_eq!(find(r, "sim1", "MBTemp").state, ReadingState::Warning);
    // PSU 1 present and healthy; PSU 2's bay empty: no psu_ok for it.
    let psu_ok = |name| {
        r.iter()
            .find(|x| x.dev == "marvell" && x.name == name && x.q == "psu_ok")
    };
    assert_eq!(psu_ok("PSU1 status").unwrap().value, Some(1.0));
    assert!(psu_ok("PSU2 status").is_none());
    // The nodes' sensors (owned by other controllers) are counted as skipped.
    let skipped = r
        .iter()
        .find(|x| x.dev == "ipmi/marvell" && x.q == "agent_ipmi_sensors_skipped")
        .unwrap();
    assert_eq!(skipped.value, Some(6.0 * 13.0), "{skipped:?}");
    // Chassis status read; DCMI refused by ipmi_sim (C1h) and no error for it.
    assert_eq!(find(r, "marvell", "chassis power").value, Some(0.0));
    assert!(r.iter().all(|x| x.name != "DCMI system power"));
    for dev in ["marvell", "sim1"] {
        let up = r.iter().find(|x| x.dev == dev && x.q == "bmc_up").unwrap();
        assert_eq!(up.value, Some(1.0), "{up:?}");
    }
    // A PSU failure follows at the next sweep.
    marvell.set_only_bit(8, 1, false);
    let r = poll(&mut source).await.unwrap().readings;
    let psu = r
        .iter()
        .find(|x| x.name == "PSU1 status" && x.q == "psu_ok")
        .unwrap();
    assert_eq!((psu.value, psu.state), (Some(0.0), ReadingState::Critical));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensor_crossing_a_threshold_changes_state_and_sel_entries_come_at_least_once_across_restarts()
 {
    if !testdata_present() {
        return;
    }
    let mut sim = IpmiSim::start(Board::Sim1);
    let state = tempfile::tempdir().unwrap();
    let mut source = source(&[("bmc", &sim, PASSWORD)], Some(state.path()), "5s");
    let first = poll_delivered(&mut source).await.unwrap();
    assert_eq!(
        find(&first.readings, "bmc", "MBTemp").state,
        ReadingState::Ok
    );
    assert!(
        first.events.is_empty(),
        "history is not news: {:?}",
        first.events
    );
    // Past the upper critical threshold (0x90): the state follows and the
    // simulator logs UNC and UC going-high entries.
    sim.set_raw(1, 0x95);
    let crossed = poll_delivered(&mut source).await.unwrap();
    let mb = find(&crossed.readings, "bmc", "MBTemp");
    assert_eq!((mb.value, mb.state), (Some(149.0), ReadingState::Critical));
    let severities: Vec<_> = crossed.events.iter().map(|e| e.severity).collect();
    assert_eq!(
        severities,
        vec![Severity::Medium, Severity::High],
        "{:#?}",
        crossed.events
    );
    assert!(
        crossed.events[1]
            .message
            .contains("MBTemp: upper critical going high asserted")
    );
    assert!(
        poll_delivered(&mut source).await.unwrap().events.is_empty(),
        "sent twice"
    );
    // The SDR cache and the cursor are on disk.
    assert!(state.path().join("bmc.sdr.json").exists());
    assert!(state.path().join("bmc.sel.json").exists());
    drop(source);

    // A restarted agent sends nothing old, then a new PSU failure, once.
    let mut restarted = source_again(&sim, state.path());
    assert!(
        poll_delivered(&mut restarted)
            .await
            .unwrap()
            .events
            .is_empty()
    );
    sim.sel_add(0x08, 0x08, 0x6f, [0x01, 0xff, 0xff]);
    let psu = poll_delivered(&mut restarted).await.unwrap().events;
    assert_eq!(psu.len(), 1, "{psu:#?}");
    assert_eq!(psu[0].severity, Severity::High);
    assert!(psu[0].message.contains("power supply failure detected"));
    assert_eq!(psu[0].src, "ipmi");
    assert_eq!(psu[0].dev, "bmc");
    assert!(
        poll_delivered(&mut restarted)
            .await
            .unwrap()
            .events
            .is_empty()
    );
    // An entry read, then the agent killed before its broker acknowledged it:
    // the cursor file was not moved, so the next start reads it again, with
    // the same id (the collector keeps it once).
    sim.sel_add(0x08, 0x08, 0x6f, [0x03, 0xff, 0xff]);
    let unacked = poll(&mut restarted).await.unwrap();
    assert_eq!(unacked.events.len(), 1, "{:#?}", unacked.events);
    assert_eq!(unacked.checkpoints.len(), 1);
    drop(restarted);
    let mut again = source_again(&sim, state.path());
    let reread = poll_delivered(&mut again).await.unwrap().events;
    assert_eq!(reread.len(), 1, "{reread:#?}");
    assert_eq!(reread[0].id, unacked.events[0].id);
    assert!(reread[0].id.as_deref().unwrap().starts_with("sel.bmc."));
    assert!(poll_delivered(&mut again).await.unwrap().events.is_empty());
    let mut restarted = again;
    // And back under the threshold.
    sim.set_raw(1, 0x60);
    let back = poll_delivered(&mut restarted).await.unwrap();
    assert_eq!(
        find(&back.readings, "bmc", "MBTemp").state,
        ReadingState::Ok
    );
}

fn source_again(sim: &IpmiSim, state: &Path) -> IpmiSource {
    source(&[("bmc", sim, PASSWORD)], Some(state), "5s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_bmc_times_out_without_delaying_another() {
    if !testdata_present() {
        return;
    }
    let frozen = IpmiSim::start(Board::Sim1);
    let healthy = IpmiSim::start(Board::Sim1);
    let mut source = source(
        &[
            ("frozen", &frozen, PASSWORD),
            ("healthy", &healthy, PASSWORD),
        ],
        None,
        "2s",
    );
    poll(&mut source).await.unwrap();
    frozen.freeze();
    for _ in 0..3 {
        let started = Instant::now();
        let r = poll(&mut source).await.unwrap().readings;
        // Inside the 2 s timeout the scheduler gives a poll.
        assert!(
            started.elapsed() < Duration::from_millis(1900),
            "{:?}",
            started.elapsed()
        );
        let down = r
            .iter()
            .find(|x| x.dev == "frozen" && x.q == "bmc_up")
            .unwrap();
        assert_eq!((down.value, down.state), (Some(0.0), ReadingState::Warning));
        assert!(
            ["timeout", "deadline", "busy"].contains(&down.labels["error"].as_str()),
            "{down:?}"
        );
        assert_eq!(find(&r, "healthy", "MBTemp").value, Some(96.0));
        let up = r
            .iter()
            .find(|x| x.dev == "healthy" && x.q == "bmc_up")
            .unwrap();
        assert_eq!(up.value, Some(1.0));
    }
    // Thawed, it comes back.
    frozen.thaw();
    let mut back = false;
    for _ in 0..5 {
        let r = poll(&mut source).await.unwrap().readings;
        if r.iter()
            .any(|x| x.dev == "frozen" && x.q == "bmc_up" && x.value == Some(1.0))
        {
            back = true;
            break;
        }
    }
    assert!(back, "the thawed BMC never came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_give_an_error_naming_the_bmc() {
    if !testdata_present() {
        return;
    }
    let sim = IpmiSim::start(Board::Sim1);
    let mut source = source(&[("r12-bmc", &sim, "not-the-password")], None, "5s");
    let e = poll(&mut source).await.unwrap_err();
    let text = e.to_string();
    assert_eq!(e.kind(), "read");
    assert!(text.contains("BMC \"r12-bmc\""), "{text}");
    assert!(text.contains("authentication failed"), "{text}");
}
