//! `sitewatch-sim`: serve simulated devices for tests and drills.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use sitewatch_modbus_profile::{Profile, Table, shipped};
use sitewatch_sim::{SimDevice, SimService, control, drill, serve, site};
use tokio::net::TcpListener;

#[derive(Debug, Parser)]
#[command(
    name = "sitewatch-sim",
    version,
    about = "Simulated devices for sitewatch tests and drills"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve one Modbus device from its profile.
    Modbus {
        /// A shipped profile name (apc-smart-ups) or a profile file.
        #[arg(long)]
        profile: String,
        /// Modbus TCP address to listen on (port 0 picks a free one).
        #[arg(long, required_unless_present = "rtu")]
        listen: Option<String>,
        /// Serial device to serve Modbus RTU on (e.g. one end of a socat pty pair).
        #[arg(long, conflicts_with = "listen")]
        rtu: Option<String>,
        /// Serial speed for --rtu.
        #[arg(long, default_value_t = 9600)]
        baud: u32,
        /// Unit id (default: the profile's, else 1).
        #[arg(long)]
        unit: Option<u8>,
        /// Address of the line-protocol control interface.
        #[arg(long)]
        control: Option<String>,
    },
    /// Serve a simulated machine room: UPS, generator, CRAC and two probes on
    /// consecutive ports.
    Site {
        /// First Modbus TCP address; the devices take this port and the next four.
        #[arg(long)]
        listen_base: String,
        /// First control address, likewise.
        #[arg(long)]
        control_base: Option<String>,
        /// Once every device listens, write the agent's
        /// `[[sources.modbus.devices]]` tables for the site to this file
        /// (complete when it appears).
        #[arg(long)]
        agent_config: Option<PathBuf>,
    },
    /// Print a profile's healthy register image as JSON (to feed another peer).
    Image {
        #[arg(long)]
        profile: String,
    },
    /// Run a disaster drill against a running stack: inject the fault, time the
    /// signal against the DR plan's target, restore, wait for the clear. Exit 0
    /// pass, 1 fail, 2 could not run.
    Drill(Box<DrillArgs>),
    /// Simulate many agents publishing v1 traffic to a broker (each its own
    /// connection, will and birth), for a bounded time; print a JSON summary.
    Load(Box<LoadArgs>),
}

#[derive(Debug, clap::Args)]
struct LoadArgs {
    /// The broker: mqtt://HOST:PORT (plain TCP).
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    mqtt: String,
    #[arg(long, default_value = "load")]
    site: String,
    /// Hosts are named <prefix>-00001, <prefix>-00002, ...
    #[arg(long, default_value = "load")]
    host_prefix: String,
    /// How many simulated agents (connections).
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// Readings per batch.
    #[arg(long, default_value_t = 10)]
    series: usize,
    /// Each agent's batch interval (its heartbeat).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// How long the agents send, after the ramp.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// The first connections are spread over this (default: the interval).
    #[arg(long, value_parser = humantime::parse_duration)]
    ramp: Option<Duration>,
    /// Each agent's first batch comes at a random moment within this after it
    /// connects (default: the interval). 0 with a long --interval gives one
    /// batch per agent at connection and then silence: a collector holding
    /// every series with nothing coming in (its idle cost).
    #[arg(long, value_parser = humantime::parse_duration)]
    first_batch_within: Option<Duration>,
    /// After the duration, how long to wait for outstanding acknowledgements.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    drain: Duration,
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    keepalive: Duration,
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,
    /// Reconnect backoff: full jitter over base * 2^attempt, capped.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    backoff_base: Duration,
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    backoff_max: Duration,
    /// Batches an agent keeps while disconnected before dropping the oldest.
    #[arg(long, default_value_t = 1000)]
    max_buffered: usize,
    #[arg(long)]
    username: Option<String>,
    /// A file whose first line is the password.
    #[arg(long, requires = "username")]
    password_file: Option<PathBuf>,
}

impl From<LoadArgs> for sitewatch_sim::load::Options {
    fn from(a: LoadArgs) -> Self {
        sitewatch_sim::load::Options {
            broker: a.mqtt,
            site: a.site,
            host_prefix: a.host_prefix,
            agents: a.agents,
            series: a.series,
            ramp: a.ramp.unwrap_or(a.interval),
            first_batch_within: a.first_batch_within.unwrap_or(a.interval),
            interval: a.interval,
            duration: a.duration,
            drain: a.drain,
            keepalive: a.keepalive,
            connect_timeout: a.connect_timeout,
            backoff_base: a.backoff_base,
            backoff_max: a.backoff_max,
            // Below the 65,535 packet ids, so that no two pending batches share one.
            max_buffered: a.max_buffered.clamp(1, 60_000),
            username: a.username,
            password_file: a.password_file,
        }
    }
}

#[derive(Debug, clap::Args)]
struct DrillArgs {
    /// power-loss, power-blip, cooling-failure, network-cut, single-host-loss,
    /// disk-failure, psu-failure, site-down, site-link-cut or site-isolated.
    scenario: String,
    /// The collector's HTTP address. The site drills take several (repeat):
    /// the observers, each `URL` or `SITE=URL` (the site it stands in; else
    /// learnt from the peers the others list).
    #[arg(
        long = "collector",
        value_name = "[SITE=]URL",
        default_value = "http://127.0.0.1:9184"
    )]
    collectors: Vec<String>,
    /// A simulator's control address (repeat); each is asked its class.
    #[arg(long = "control", value_name = "ADDR")]
    controls: Vec<String>,
    /// The first control address of `sitewatch-sim site`: its five devices.
    #[arg(long, value_name = "ADDR")]
    control_base: Option<String>,
    /// The site drilled (default: the collector's only site; the site drills
    /// need it).
    #[arg(long)]
    site: Option<String>,
    /// site-link-cut: the site at the other end of the cut link.
    #[arg(long)]
    peer_site: Option<String>,
    /// The host expected in an L2 drill's signal.
    #[arg(long)]
    host: Option<String>,
    /// An agent to take off the network (repeat, or comma-separated).
    #[arg(long = "agent-pid", value_name = "PID", value_delimiter = ',')]
    agent_pids: Vec<u32>,
    /// STOP: frozen, silent like a cut link, restored with CONT; KILL: gone.
    #[arg(long, default_value = "STOP")]
    agent_signal: String,
    /// A shell command that injects the fault (after the built-in injection).
    #[arg(long)]
    fault_cmd: Option<String>,
    /// A shell command that undoes it.
    #[arg(long)]
    restore_cmd: Option<String>,
    /// The DR plan's detection target.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    target: Duration,
    /// How long to wait for the expected signal.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// How long to keep watching after it came (an L2 the L3 should inhibit
    /// shows after its own hold, 10 s by default).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    settle: Duration,
    /// How long the restored site may take to clear (the collector's
    /// clear_after, 30 s by default, plus a poll or two).
    #[arg(long, default_value = "90s", value_parser = humantime::parse_duration)]
    clear_timeout: Duration,
    /// power-blip: the collector's generator start grace.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    grace: Duration,
    /// power-blip: how long past the grace to keep watching.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    margin: Duration,
    /// power-blip: when the generator takes over.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    generator_start: Duration,
    /// How often the collector is asked.
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    poll: Duration,
}

impl DrillArgs {
    fn options(self) -> Result<drill::run::Options> {
        let scenario = drill::Scenario::parse(&self.scenario).with_context(|| {
            let names: Vec<&str> = drill::Scenario::ALL.iter().map(|s| s.name()).collect();
            format!(
                "unknown scenario `{}`: one of {}",
                self.scenario,
                names.join(", ")
            )
        })?;
        let mut controls = self.controls;
        if let Some(base) = &self.control_base {
            for (_, _, by) in site::SITE {
                controls.push(offset(base, *by)?);
            }
        }
        let observers = self
            .collectors
            .iter()
            .map(|c| drill::run::Observer::parse(c))
            .collect::<Result<Vec<_>, _>>()?;
        let collector = observers
            .first()
            .map(|o| o.url.clone())
            .context("give a --collector")?;
        Ok(drill::run::Options {
            scenario,
            collector,
            observers,
            peer_site: self.peer_site,
            controls,
            site: self.site,
            host: self.host,
            agent_pids: self.agent_pids,
            agent_signal: self.agent_signal,
            fault_cmd: self.fault_cmd,
            restore_cmd: self.restore_cmd,
            target: self.target,
            timeout: self.timeout,
            settle: self.settle,
            clear_timeout: self.clear_timeout,
            grace: self.grace,
            margin: self.margin,
            generator_start: self.generator_start,
            poll: self.poll,
        })
    }
}

/// Exit statuses of `drill`.
const EXIT_FAIL: i32 = 1;
const EXIT_CANNOT_RUN: i32 = 2;

async fn run_drill(args: DrillArgs) -> i32 {
    let options = match args.options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("drill: {e:#}");
            return EXIT_CANNOT_RUN;
        }
    };
    match drill::run::drill(&options).await {
        Ok(drill::Outcome::Pass) => 0,
        Ok(drill::Outcome::Fail(_)) => EXIT_FAIL,
        Err(e) => {
            eprintln!("{}: cannot run the drill: {e}", options.scenario);
            EXIT_CANNOT_RUN
        }
    }
}

fn load_profile(name: &str) -> Result<Profile> {
    if let Some(loaded) = shipped::load(name) {
        return Ok(loaded?);
    }
    let text = std::fs::read_to_string(Path::new(name))
        .with_context(|| format!("`{name}` is neither a shipped profile nor a readable file"))?;
    Ok(Profile::from_toml(&text, name)?)
}

/// Tells the caller (a test, a script) where things listen: one line each.
fn announce(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

fn offset(addr: &str, by: u16) -> Result<String> {
    let (host, port) = addr.rsplit_once(':').context("address must be HOST:PORT")?;
    let port: u16 = port.parse().context("port must be a number")?;
    // Port 0 stays 0: every device then gets a free port of its own.
    let port = if port == 0 {
        0
    } else {
        port.checked_add(by).context("port past 65535")?
    };
    Ok(format!("{host}:{port}"))
}

async fn start_device(
    device: SimDevice,
    listen: &str,
    control_addr: Option<&str>,
    name: &str,
) -> Result<SocketAddr> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let local = listener.local_addr()?;
    announce(&format!("{name}modbus listening on {local}"))?;
    if let Some(addr) = control_addr {
        let control = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        announce(&format!(
            "{name}control listening on {}",
            control.local_addr()?
        ))?;
        tokio::spawn(control::serve_control(control, device.clone()));
    }
    tokio::spawn(serve::serve_tcp(listener, SimService::new(vec![device])));
    Ok(local)
}

/// Writes `text` to `path` through a temporary file and a rename, so that a
/// reader waiting for the file never sees half of it.
fn write_whole(path: &Path, text: &str) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn image_json(profile: &Profile) -> Result<String> {
    let image = profile.default_image()?;
    let mut tables = Vec::new();
    for table in Table::ALL {
        let entries: Vec<String> = if table.is_bits() {
            image
                .all_bits()
                .filter(|(t, _, _)| *t == table)
                .map(|(_, a, b)| format!("\"{a}\":{}", u8::from(b)))
                .collect()
        } else {
            image
                .all_words()
                .filter(|(t, _, _)| *t == table)
                .map(|(_, a, w)| format!("\"{a}\":{w}"))
                .collect()
        };
        tables.push(format!("\"{}\":{{{}}}", table.as_str(), entries.join(",")));
    }
    Ok(format!("{{{}}}", tables.join(",")))
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Image { profile } => {
            announce(&image_json(&load_profile(&profile)?)?)?;
            return Ok(());
        }
        Command::Load(args) => {
            let summary = sitewatch_sim::load::load((*args).into()).await?;
            announce(&summary.to_string())?;
            return Ok(());
        }
        Command::Drill(args) => {
            let code = run_drill(*args).await;
            std::process::exit(code);
        }
        Command::Modbus {
            profile,
            listen,
            rtu,
            baud,
            unit,
            control,
        } => {
            let profile = load_profile(&profile)?;
            let unit = unit.or(profile.device.default_unit).unwrap_or(1);
            let device = SimDevice::new(profile, unit)?;
            match (listen, rtu) {
                (Some(listen), None) => {
                    start_device(device, &listen, control.as_deref(), "").await?;
                }
                (None, Some(path)) => {
                    if let Some(addr) = control.as_deref() {
                        let listener = TcpListener::bind(addr).await?;
                        announce(&format!("control listening on {}", listener.local_addr()?))?;
                        tokio::spawn(control::serve_control(listener, device.clone()));
                    }
                    announce(&format!("modbus rtu serving on {path}"))?;
                    tokio::spawn(async move {
                        if let Err(err) =
                            serve::serve_rtu(&path, baud, SimService::new(vec![device])).await
                        {
                            tracing::error!(error = %err, "rtu server stopped");
                        }
                    });
                }
                _ => bail!("give exactly one of --listen and --rtu"),
            }
        }
        Command::Site {
            listen_base,
            control_base,
            agent_config,
        } => {
            let mut served = Vec::new();
            for (name, profile_name, by) in site::SITE {
                let profile = load_profile(profile_name)?;
                let unit = profile.device.default_unit.unwrap_or(1);
                let device = SimDevice::new(profile, unit)?;
                let control = control_base
                    .as_deref()
                    .map(|c| offset(c, *by))
                    .transpose()?;
                let address = start_device(
                    device,
                    &offset(&listen_base, *by)?,
                    control.as_deref(),
                    &format!("{name} "),
                )
                .await?;
                served.push(site::Served {
                    name: (*name).to_owned(),
                    profile: (*profile_name).to_owned(),
                    unit,
                    address,
                });
            }
            if let Some(path) = agent_config {
                write_whole(&path, &site::agent_devices_toml(&served))?;
            }
        }
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}
