//! The command line: `run`, `check-config` and `once`.

use std::{collections::BTreeMap, io::Write, path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};
use sitewatch_protocol::{HostName, SiteName};
use tokio::sync::{mpsc, watch};

use crate::{
    config::{BrokerUrl, Config, ConfigError, Overrides, SourcesConfig},
    logging::LogFormat,
    publisher::{self, Announcement, PublisherError},
    scheduler,
    source::{Poll, Source, SourceError},
};

/// Outcomes waiting for the publisher, at most: enough for a burst of sources
/// finishing at once; a source finding the channel full waits, the others do not.
const OUTCOME_CHANNEL: usize = 64;

#[derive(Debug, Parser)]
#[command(
    name = "sitewatch-agent",
    version,
    about = "Reads host and device sensors and publishes them over MQTT to sitewatch-collector"
)]
pub struct Cli {
    /// Log format on stderr; the level comes from RUST_LOG (default info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Poll the sources and publish to MQTT until SIGTERM or SIGINT.
    Run(RunArgs),
    /// Validate a config file and print the effective configuration as TOML (exit 2 on error).
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// Poll every source once and print the readings as JSON lines on stdout (no MQTT).
    Once {
        /// Config file (TOML); without one, the host source with its defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Config file (TOML). Without one: the host source with its defaults, and
    /// --site is required.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Broker URL, overriding mqtt.url: mqtt://HOST:PORT or mqtts://HOST:PORT (port optional).
    #[arg(long, value_name = "URL")]
    pub mqtt: Option<BrokerUrl>,
    /// Site name, overriding `site`.
    #[arg(long)]
    pub site: Option<SiteName>,
    /// Host name, overriding `host`.
    #[arg(long)]
    pub host: Option<HostName>,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("source {name}: {source}")]
    Source {
        name: &'static str,
        source: SourceError,
    },
    #[error(transparent)]
    Publisher(#[from] PublisherError),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{failed} source(s) failed")]
    SourcesFailed { failed: usize },
    #[cfg(feature = "nut")]
    #[error(transparent)]
    NutServer(crate::nutd::FacadeError),
}

impl CliError {
    pub fn kind(&self) -> &'static str {
        match self {
            CliError::Config(e) => e.kind(),
            CliError::Source { source, .. } => source.kind(),
            CliError::Publisher(e) => e.kind(),
            CliError::Io { .. } => "io",
            CliError::SourcesFailed { .. } => "sources_failed",
            #[cfg(feature = "nut")]
            CliError::NutServer(_) => "nut_server",
        }
    }

    /// 2 for a configuration error (as `check-config` promises), 1 otherwise.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Config(_) => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }
}

/// Runs a parsed command line.
pub fn execute(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::CheckConfig { file } => {
            let config = Config::load(Some(&file), &Overrides::default())?;
            config.check_files(&file.display().to_string())?;
            let text = config.to_toml().map_err(|e| CliError::Io {
                what: "printing the configuration",
                source: std::io::Error::other(e),
            })?;
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Once { config } => {
            let sources = match config {
                Some(path) => Config::load(Some(&path), &Overrides::default())?.sources,
                None => SourcesConfig::default(),
            };
            runtime()?.block_on(once(&sources))
        }
        Command::Run(args) => {
            let overrides = Overrides {
                site: args.site,
                host: args.host,
                mqtt_url: args.mqtt,
            };
            let config = Config::load(args.config.as_deref(), &overrides)?;
            // A missing file is a configuration error (exit 2, which the unit
            // does not restart on), not a failure every 5 s.
            let origin = args
                .config
                .as_deref()
                .map_or_else(|| "command line".to_owned(), |p| p.display().to_string());
            config.check_files(&origin)?;
            runtime()?.block_on(run(config))
        }
    }
}

/// One thread is plenty for an agent (and small on a gateway); blocking reads
/// run on tokio's blocking pool.
fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| CliError::Io {
            what: "starting the runtime",
            source,
        })
}

fn build_sources(
    sources: &SourcesConfig,
) -> Result<Vec<(Source, crate::config::Schedule)>, CliError> {
    sources
        .enabled()
        .iter()
        .map(|c| {
            Source::build(c)
                .map(|s| (s, c.schedule()))
                .map_err(|source| CliError::Source {
                    name: c.name(),
                    source,
                })
        })
        .collect()
}

/// `once`: every source polled concurrently, readings printed as JSON lines
/// with their read time.
async fn once(sources: &SourcesConfig) -> Result<ExitCode, CliError> {
    let polls = build_sources(sources)?
        .into_iter()
        .map(|(source, schedule)| {
            // One poll right after start: no 200 ms CPU sampling wait.
            let mut source = source;
            #[cfg(feature = "host")]
            #[allow(irrefutable_let_patterns)] // a build with the host source only
            if let Source::Host(host) = &mut source {
                host.skip_cpu_wait();
            }
            tokio::spawn(async move { scheduler::poll_once(&mut source, schedule.timeout).await })
        })
        .collect::<Vec<_>>();
    let mut failed = 0;
    let mut stdout = std::io::stdout().lock();
    for poll in polls {
        let outcome = poll.await.map_err(|e| CliError::Io {
            what: "polling",
            source: std::io::Error::other(e),
        })?;
        match outcome.result {
            Ok(polled) => {
                // Events first: each line is a JSON object; events carry `type`
                // and `severity`, readings carry `q` and `value`.
                let events = polled.events.into_iter().map(|mut event| {
                    event.ts.get_or_insert(outcome.ts_ms);
                    serde_json::to_string(&event)
                });
                let readings = polled.readings.into_iter().map(|mut reading| {
                    // A reading that carries its own read time (a probe's) keeps it.
                    reading.ts.get_or_insert(outcome.ts_ms);
                    serde_json::to_string(&reading)
                });
                for line in events.chain(readings) {
                    let line = line.map_err(|e| CliError::Publisher(PublisherError::Encode(e)))?;
                    match writeln!(stdout, "{line}") {
                        Ok(()) => {}
                        // `once | head`: the reader has what it wanted.
                        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                            logout_sessions().await;
                            return Ok(ExitCode::SUCCESS);
                        }
                        Err(source) => {
                            return Err(CliError::Io {
                                what: "writing to stdout",
                                source,
                            });
                        }
                    }
                }
            }
            Err(e) => {
                failed += 1;
                tracing::error!(source = outcome.source, kind = e.kind(), error = %e, "poll failed");
            }
        }
    }
    logout_sessions().await;
    if failed > 0 {
        return Err(CliError::SourcesFailed { failed });
    }
    Ok(ExitCode::SUCCESS)
}

/// Deletes the sessions sources opened on devices (Redfish), so that a stop
/// never leaves one behind to exhaust the BMC's session table.
async fn logout_sessions() {
    #[cfg(feature = "redfish")]
    crate::source::redfish::shutdown(std::time::Duration::from_secs(5)).await;
}

/// `run`: sources, scheduler and publisher until a signal.
async fn run(config: Config) -> Result<ExitCode, CliError> {
    // Signals first, so that a SIGTERM during start-up is a clean stop too.
    let (stop_tx, stop_rx) = watch::channel(false);
    let signals = wait_for_signal().map_err(|source| CliError::Io {
        what: "installing signal handlers",
        source,
    })?;
    tokio::spawn(async move {
        let name = signals.await;
        tracing::info!(signal = name, "stopping");
        let _ = stop_tx.send(true);
    });

    let sources = build_sources(&config.sources)?;
    let announced: BTreeMap<String, u64> = sources
        .iter()
        .map(|(s, schedule)| {
            (
                s.name().to_owned(),
                u64::try_from(schedule.interval.as_millis()).unwrap_or(u64::MAX),
            )
        })
        .collect();
    #[allow(unused_mut)]
    let mut latest = None;
    #[cfg(feature = "nut")]
    if let Some(n) = config.nut_server.as_ref().filter(|n| n.enabled) {
        let view = crate::latest::Latest::new();
        let facade = crate::nutd::Facade::new(n.clone(), std::sync::Arc::clone(&view))
            .map_err(CliError::NutServer)?;
        crate::nutd::start(facade, stop_rx.clone())
            .await
            .map_err(CliError::NutServer)?;
        latest = Some(view);
    }
    let (tx, rx) = mpsc::channel(OUTCOME_CHANNEL);
    let tasks = scheduler::spawn(sources, tx, stop_rx.clone());
    let published =
        publisher::run(&config, Announcement::new(announced), rx, stop_rx, latest).await;
    for task in tasks {
        task.abort();
    }
    logout_sessions().await;
    published?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves with the signal's name on SIGTERM or SIGINT.
fn wait_for_signal() -> std::io::Result<impl std::future::Future<Output = &'static str>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}
