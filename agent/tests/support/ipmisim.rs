//! A test rig around OpenIPMI's `ipmi_sim`: one simulated BMC on 127.0.0.1 at a
//! port chosen at run time, built from the shared test data
//! (`shared/testdata/ipmi/openipmi_sim/`), and driven at run time through the
//! simulator's console on its standard input.
//!
//! How the simulator is driven (learnt hands-on):
//! - `ipmi_sim -c lan.conf -f sim.emu -s STATE` reads the LAN setup from
//!   `lan.conf`, runs the emulator commands of `sim.emu`, and loads the main SDR
//!   repository of the MC at 0x20 from `STATE/ipmi_sim/<name>/sdr.20.main`
//!   (what `sdrcomp -o` writes) because `mc_add` says `persist_sdr`.
//! - Its console is its standard input: it must be a pipe (`/dev/null` makes it
//!   abort on `epoll_ctl`), every command is echoed and followed by a `> `
//!   prompt, and errors start with `**`. So a command is done when the next
//!   prompt shows: no sleeping.
//! - A command file stops at its first error: the upstream emulator files have
//!   lines that fail here (FRU data from `/sys` files, FRU data for an MC added
//!   later, polled sensors reading `/sys` files) and are adapted.
//! - `sensor_set_value MC LUN NUM RAW 1` sets an analog sensor's raw byte and
//!   logs threshold-crossing SEL entries; `sensor_set_bit_clr_rest` sets a
//!   discrete bit; `sel_add MC TYPE b1..b13` adds a SEL record (the simulator
//!   stamps its time).
#![allow(dead_code)]

use std::{
    io::{Read, Write},
    net::UdpSocket,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Output, Stdio},
    sync::{Arc, Condvar, Mutex},
    time::{Duration, Instant},
};

const TESTDATA: &str = "ipmi/openipmi_sim";

/// Whether the shared test data is beside the checkout. A test calls this first
/// and returns when it is `false` (a SKIPPED line has been written; under
/// `SITEWATCH_REQUIRE_SHARED=1` a missing folder fails instead).
pub fn testdata_present() -> bool {
    sitewatch_shared_testdata::dir(TESTDATA, "ipmi_sim configurations").is_some()
}

/// The shared test data; only after [`testdata_present`] said it is there.
pub fn testdata() -> PathBuf {
    sitewatch_shared_testdata::root().join(TESTDATA)
}

/// Which upstream setup to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Board {
    /// `ipmisim1`: one temperature sensor with upper thresholds, a presence
    /// sensor, a satellite MC at 0x30.
    Sim1,
    /// The Marvell AXP server BMC: temperatures, voltages, eight fans, two
    /// PSU status sensors with PSU voltage, current and power.
    Marvell,
}

pub const USER: &str = "monitor";
pub const PASSWORD: &str = "s3cret-pw";

#[derive(Debug, Default)]
struct Console {
    output: String,
    prompts: usize,
}

/// A running simulator; killed when dropped.
#[derive(Debug)]
pub struct IpmiSim {
    pub port: u16,
    pub board: Board,
    child: Child,
    stdin: ChildStdin,
    console: Arc<(Mutex<Console>, Condvar)>,
    dir: tempfile::TempDir,
}

/// Joins `\`-continued lines.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(head) = line.trim_end().strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(line);
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The upstream emulator commands without what cannot run here: FRU data from
/// files, and sensor polling of `/sys` files (the test sets values instead).
pub fn adapt_emu(text: &str) -> String {
    let mut out = String::new();
    for line in logical_lines(text) {
        let trimmed = line.trim();
        if trimmed.starts_with("mc_add_fru_data") {
            continue;
        }
        if trimmed.starts_with("sensor_add") {
            let words: Vec<&str> = trimmed.split_whitespace().collect();
            let keep = if words.last() == Some(&"event-only") {
                words.clone()
            } else {
                words[..words.len().min(6)].to_vec()
            };
            out.push_str(&keep.join(" "));
        } else {
            out.push_str(&line);
        }
        out.push('\n');
    }
    out
}

/// The upstream `lan.conf` reduced to its name and first LAN channel, listening
/// on 127.0.0.1:`port`, with one admin user of ours (and no `/etc` helper
/// programs, serial ports, SOL devices or modules).
pub fn adapt_lan_conf(text: &str, port: u16, name: &str) -> String {
    let mut out = format!("name \"{name}\"\nset_working_mc 0x20\n");
    let mut in_lan = false;
    let mut done = false;
    for line in text.lines() {
        let t = line.trim();
        if done {
            break;
        }
        if t.starts_with("startlan") {
            in_lan = true;
            out.push_str(t);
            out.push('\n');
            out.push_str(&format!("addr 127.0.0.1 {port}\n"));
            continue;
        }
        if !in_lan {
            continue;
        }
        if t.starts_with("endlan") {
            out.push_str("endlan\n");
            done = true;
            continue;
        }
        if t.starts_with("addr") || t.starts_with("lan_config_program") || t.starts_with('#') {
            continue;
        }
        out.push_str(t);
        out.push('\n');
    }
    out.push_str(&format!(
        "user 2 true \"{USER}\" \"{PASSWORD}\" admin 10 none md2 md5 straight\n"
    ));
    out
}

fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

/// Runs a command, killing it after `limit`.
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > limit {
            child.kill().ok();
            let out = child.wait_with_output().unwrap();
            panic!("{cmd:?} took longer than {limit:?}: {out:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl IpmiSim {
    pub fn start(board: Board) -> IpmiSim {
        // A port found free can be taken before the simulator binds it: try again.
        for _ in 0..5 {
            if let Some(sim) = Self::try_start(board) {
                return sim;
            }
        }
        panic!("ipmi_sim did not come up");
    }

    fn try_start(board: Board) -> Option<IpmiSim> {
        let data = testdata();
        let (sdr_dir, sdrs, emu_files, lan) = match board {
            Board::Sim1 => (
                data.clone(),
                "ipmisim1.sdrs",
                vec!["ipmisim1.emu"],
                data.join("lan.conf"),
            ),
            Board::Marvell => (
                data.join("marvell-bmc"),
                "main.sdrs",
                vec!["marvell.emu", "marvell_node.emu"],
                data.join("marvell-bmc/lan.conf"),
            ),
        };
        let dir = tempfile::tempdir().unwrap();
        let name = "sim";
        let port = free_udp_port();
        let state = dir.path().join("state");
        let sdr_out = state.join("ipmi_sim").join(name);
        std::fs::create_dir_all(&sdr_out).unwrap();
        // sdrcomp resolves `include` against its working directory.
        let out = run_with_timeout(
            Command::new("sdrcomp")
                .current_dir(&sdr_dir)
                .arg("-o")
                .arg(sdr_out.join("sdr.20.main"))
                .arg(sdrs),
            Duration::from_secs(20),
        );
        assert!(out.status.success(), "sdrcomp: {out:?}");
        for emu in &emu_files {
            let text = std::fs::read_to_string(sdr_dir.join(emu)).unwrap();
            std::fs::write(dir.path().join(emu), adapt_emu(&text)).unwrap();
        }
        let lan_text = std::fs::read_to_string(lan).unwrap();
        std::fs::write(
            dir.path().join("lan.conf"),
            adapt_lan_conf(&lan_text, port, name),
        )
        .unwrap();
        let mut child = Command::new("ipmi_sim")
            .current_dir(dir.path())
            .arg("-c")
            .arg("lan.conf")
            .arg("-f")
            .arg(emu_files[0])
            .arg("-s")
            .arg(&state)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let console = Arc::new((Mutex::new(Console::default()), Condvar::new()));
        let reader = Arc::clone(&console);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let (lock, cv) = &*reader;
                let mut c = lock.lock().unwrap();
                c.output.push_str(&String::from_utf8_lossy(&buf[..n]));
                c.prompts = c.output.matches("> ").count();
                cv.notify_all();
            }
        });
        let mut sim = IpmiSim {
            port,
            board,
            child,
            stdin,
            console,
            dir,
        };
        // Ready when ipmitool gets an answer (each try bounded by -N/-R).
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if sim.child.try_wait().unwrap().is_some() {
                return None; // exited: most likely the port was taken
            }
            let out = sim.ipmitool_output(&["mc", "info"]);
            if out.status.success() {
                return Some(sim);
            }
        }
        sim.child.kill().ok();
        None
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The directory the simulator runs in (a good place for a password file).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs one console command and returns what it printed; panics on `**` errors.
    pub fn command(&mut self, cmd: &str) -> String {
        let (lock, cv) = &*self.console;
        let (before, start) = {
            let c = lock.lock().unwrap();
            (c.prompts, c.output.len())
        };
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut c = lock.lock().unwrap();
        while c.prompts <= before {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "ipmi_sim did not finish {cmd:?}");
            c = cv.wait_timeout(c, left).unwrap().0;
        }
        let printed = c.output[start..].to_owned();
        assert!(!printed.contains("**"), "{cmd:?}: {printed}");
        printed
    }

    /// Sets an analog sensor of the BMC to a raw byte, logging threshold events.
    pub fn set_raw(&mut self, sensor: u8, raw: u8) {
        self.command(&format!(
            "sensor_set_value 0x20 0 {sensor:#04x} {raw:#04x} 1"
        ));
    }

    /// Sets discrete bit `bit` of a BMC sensor, clearing the others.
    pub fn set_only_bit(&mut self, sensor: u8, bit: u8, generate_event: bool) {
        self.command(&format!(
            "sensor_set_bit_clr_rest 0x20 0 {sensor:#04x} {bit} 1 {}",
            u8::from(generate_event)
        ));
    }

    /// Adds a system event record: sensor type, number, event type (bit 7 =
    /// deassertion) and the three event data bytes.
    pub fn sel_add(&mut self, sensor_type: u8, sensor: u8, dir_type: u8, data: [u8; 3]) {
        self.command(&format!(
            "sel_add 0x20 0x02 0x00 0x00 0x00 0x00 0x20 0x00 0x04 {sensor_type:#04x} {sensor:#04x} {dir_type:#04x} {:#04x} {:#04x} {:#04x}",
            data[0], data[1], data[2]
        ));
    }

    /// Freezes the simulator (it stops answering without closing its port).
    pub fn freeze(&self) {
        signal(self.pid(), "STOP");
    }

    pub fn thaw(&self) {
        signal(self.pid(), "CONT");
    }

    pub fn ipmitool_output(&self, args: &[&str]) -> Output {
        let port = self.port.to_string();
        let mut cmd = Command::new("ipmitool");
        cmd.args([
            "-I",
            "lanplus",
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            USER,
            "-P",
            PASSWORD,
            "-C",
            "3",
            "-N",
            "1",
            "-R",
            "2",
        ])
        .args(args);
        run_with_timeout(&mut cmd, Duration::from_secs(30))
    }

    /// `ipmitool -I lanplus ... <args>` against this simulator; its stdout.
    pub fn ipmitool(&self, args: &[&str]) -> String {
        let out = self.ipmitool_output(args);
        assert!(out.status.success(), "ipmitool {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }
}

fn signal(pid: u32, sig: &str) {
    let out = run_with_timeout(
        Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string()),
        Duration::from_secs(5),
    );
    assert!(out.status.success(), "kill -{sig}: {out:?}");
}

impl Drop for IpmiSim {
    fn drop(&mut self) {
        // A frozen simulator must be thawed to die of anything but SIGKILL;
        // SIGKILL needs no thaw.
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// One row of `ipmitool sensor`: name, value (None for `na`), unit, status.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRow {
    pub name: String,
    pub value: Option<f64>,
    pub unit: String,
    pub status: String,
}

/// Parses `ipmitool sensor`'s table (`name | value | unit | status | thresholds...`).
pub fn parse_sensor_table(text: &str) -> Vec<ToolRow> {
    text.lines()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split('|').map(str::trim).collect();
            if cols.len() < 4 {
                return None;
            }
            Some(ToolRow {
                name: cols[0].to_owned(),
                value: cols[1].parse().ok(),
                unit: cols[2].to_owned(),
                status: cols[3].to_owned(),
            })
        })
        .collect()
}
