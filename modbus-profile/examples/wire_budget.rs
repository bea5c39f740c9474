//! Per shipped profile: requests per poll with the planner against one request
//! per point (as prometheus modbus_exporter polls), bytes on the wire in RTU
//! and TCP framing, and the bus time of one poll on a serial line.
//!
//! ```sh
//! cargo run --release -p sitewatch-modbus-profile --example wire_budget
//! cargo run --release -p sitewatch-modbus-profile --example wire_budget -- --baud 19200 --turnaround-ms 25
//! ```
//!
//! Prints a Markdown table (the one in BENCHMARKS.md).

use std::{error::Error, time::Duration};

use sitewatch_modbus_profile::{
    Limits, Plan, Profile, shipped,
    wire::{Cost, Framing, SerialTiming, per_point_reads, plan_reads},
};

fn main() -> Result<(), Box<dyn Error>> {
    let mut timing = SerialTiming::baud_9600(Duration::from_millis(10));
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--baud" => timing.baud = value.parse()?,
            "--turnaround-ms" => timing.turnaround = Duration::from_millis(value.parse()?),
            "--bits-per-char" => timing.bits_per_char = value.parse()?,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "Serial line: {} baud, {} bits per character ({:.3} ms), frame gap {:.2} ms, \
         device turnaround {:.0} ms; a transaction is request + gap + turnaround + answer + gap.\n",
        timing.baud,
        timing.bits_per_char,
        ms(timing.char_time()),
        ms(timing.frame_gap()),
        ms(timing.turnaround),
    );
    println!(
        "| profile | points | requests: plan / per point | ratio | registers+bits read: plan / per point | \
         RTU bytes: plan / per point | TCP bytes: plan / per point | bus time at {} baud: plan / per point | \
         plan without gap fill: requests, bus time | plan with gap fill <= {} registers: requests, bus time |",
        timing.baud,
        timing.break_even_gap_registers(),
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for s in shipped::SHIPPED {
        let profile = Profile::from_toml(s.text, s.path)?;
        let plan = plan_reads(&Plan::new(&profile));
        let naive = per_point_reads(&profile);
        let no_fill = Limits {
            gap_fill: 0,
            ..profile.limits.clone()
        };
        let tight = Cost::of(
            &plan_reads(&Plan::with_limits(&profile, &no_fill)),
            Framing::Rtu,
        );
        let capped_fill = Limits {
            gap_fill: profile
                .limits
                .gap_fill
                .min(timing.break_even_gap_registers()),
            ..profile.limits.clone()
        };
        let capped = Cost::of(
            &plan_reads(&Plan::with_limits(&profile, &capped_fill)),
            Framing::Rtu,
        );
        let (rtu, rtu_naive) = (
            Cost::of(&plan, Framing::Rtu),
            Cost::of(&naive, Framing::Rtu),
        );
        let (tcp, tcp_naive) = (
            Cost::of(&plan, Framing::Tcp),
            Cost::of(&naive, Framing::Tcp),
        );
        println!(
            "| {} | {} | {} / {} | {:.1}x | {} / {} | {} / {} | {} / {} | {:.0} ms / {:.0} ms | {}, {:.0} ms | {}, {:.0} ms |",
            s.name,
            profile.points().len(),
            rtu.transactions,
            rtu_naive.transactions,
            rtu_naive.transactions as f64 / rtu.transactions.max(1) as f64,
            rtu.units_read,
            rtu_naive.units_read,
            rtu.bytes(),
            rtu_naive.bytes(),
            tcp.bytes(),
            tcp_naive.bytes(),
            ms(rtu.bus_time(&timing)),
            ms(rtu_naive.bus_time(&timing)),
            tight.transactions,
            ms(tight.bus_time(&timing)),
            capped.transactions,
            ms(capped.bus_time(&timing)),
        );
    }
    Ok(())
}
