//! The `ipmi` source against OpenIPMI's `ipmi_sim`, compared with what
//! `ipmitool -I lanplus` reads from the same simulator.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::ipmisim::{Board, IpmiSim, parse_sensor_table};

#[test]
fn rig_starts_both_boards_and_changes_a_sensor_at_run_time() {
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

#[test]
#[ignore]
fn dump_marvell() {
    let mut sim = IpmiSim::start(Board::Marvell);
    sim.set_raw(0x70, 10);
    sim.set_only_bit(8, 0, false);
    println!("{}", sim.ipmitool(&["sensor"]));
    println!("{}", sim.ipmitool(&["sdr", "elist"]));
    println!("{}", sim.ipmitool(&["chassis", "status"]));
}
