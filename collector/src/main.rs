//! `sitewatch-collector`: a thin shell over the library (see its docs).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use sitewatch_collector::cli::{Cli, Command};
use sitewatch_collector::config::{self, FileConfig, LogFormat, Settings};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    if let Some(Command::CheckConfig { file }) = &cli.command {
        return match check_config(file) {
            Ok(()) => {
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e:#}");
                ExitCode::from(2)
            }
        };
    }
    if let Some(Command::Passwd {
        file,
        user,
        delete,
        stdin,
        iterations,
    }) = &cli.command
    {
        use sitewatch_collector::broker::passwd;
        let cmd = passwd::PasswdCommand {
            file: file.clone(),
            user: user.clone(),
            delete: *delete,
            stdin: *stdin,
            iterations: *iterations,
        };
        return match passwd::run(&cmd) {
            Ok(done) => {
                eprintln!("{done}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sitewatch-collector passwd: {e}");
                ExitCode::from(2)
            }
        };
    }
    if let Some(Command::Replay { file }) = &cli.command {
        return match replay(&cli, file) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sitewatch-collector replay: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "sitewatch-collector failed");
            eprintln!("sitewatch-collector: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The default filter when RUST_LOG is not set. The embedded broker logs each
/// client's connection and end at debug
/// (RUST_LOG=info,sitewatch_collector::broker=debug shows them).
const DEFAULT_LOG_FILTER: &str = "info";

fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn check_config(file: &Path) -> anyhow::Result<()> {
    let parsed = config::load(file)?;
    let settings = Settings::resolve(&parsed, &Default::default(), &file.display().to_string())?;
    settings.check_files()?;
    Ok(())
}

fn settings(cli: &Cli) -> anyhow::Result<Settings> {
    let (file, origin) = match &cli.config {
        Some(path) => (config::load(path)?, path.display().to_string()),
        None => (FileConfig::default(), "defaults".to_owned()),
    };
    Ok(Settings::resolve(&file, &cli.overrides(), &origin)?)
}

fn replay(cli: &Cli, file: &Path) -> anyhow::Result<()> {
    use sitewatch_collector::replay::{ReplayEvent, replay};
    use std::io::{BufRead, BufReader, Write};
    let settings = settings(cli)?;
    let input: Box<dyn BufRead> = if file == Path::new("-") {
        Box::new(BufReader::new(std::io::stdin().lock()))
    } else {
        let f = std::fs::File::open(file).with_context(|| format!("{}", file.display()))?;
        Box::new(BufReader::new(f))
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut write_error: Option<std::io::Error> = None;
    replay(
        input,
        settings.state,
        &settings.signals,
        |event| match event {
            ReplayEvent::Timeline(entry) => {
                if write_error.is_none() {
                    let line = serde_json::to_string(&entry).map_err(std::io::Error::other);
                    if let Err(e) = line.and_then(|l| writeln!(out, "{l}")) {
                        write_error = Some(e);
                    }
                }
            }
            ReplayEvent::Skipped(e) => eprintln!("{}: {e}", file.display()),
        },
    )
    .with_context(|| format!("{}", file.display()))?;
    if let Some(e) = write_error {
        return Err(e).context("cannot write the timeline");
    }
    out.flush().context("cannot write the timeline")?;
    Ok(())
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let settings = settings(cli)?;
    let options = sitewatch_collector::run::RunOptions {
        record: cli.record.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(sitewatch_collector::run::run(settings, options))?;
    Ok(())
}
