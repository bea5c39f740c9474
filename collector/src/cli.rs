//! The command line. Values given here override the config file's.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{LogFormat, Overrides};

/// Keeps the latest state of every sitewatch site, host and sensor, and exposes it
/// to Prometheus on /metrics.
#[derive(Debug, Parser)]
#[command(name = "sitewatch-collector", version)]
pub struct Cli {
    /// Configuration file (TOML).
    #[arg(long, short = 'c', env = "SITEWATCH_COLLECTOR_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// HTTP address for /metrics, /healthz and /api/v1/hosts [default: 127.0.0.1:9184].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Consume this broker (mqtt://host:port or mqtts://host:port) instead of running
    /// the embedded one.
    #[arg(long, value_name = "URL")]
    pub mqtt: Option<String>,
    /// The embedded broker's listener (MQTT 3.1.1 and 5) [default: 127.0.0.1:1883].
    #[arg(long, value_name = "ADDR")]
    pub embedded_broker: Option<SocketAddr>,
    /// The embedded broker's second listener (MQTT 3.1.1 and 5) [default: the
    /// first one's port + 1].
    #[arg(long, value_name = "ADDR")]
    pub embedded_broker_v5: Option<SocketAddr>,
    /// Split the agents' readings with the other collectors of this group (MQTT v5
    /// shared subscription $share/NAME/...).
    #[arg(long, value_name = "NAME")]
    pub share_group: Option<String>,
    /// This collector's name in `[signals.topology]` (overrides `name`).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// TLS, basic authentication and headers for /metrics and /api/*: a web
    /// config file in the Prometheus exporter toolkit's format (YAML).
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,
    /// HTTP connections open at once [default: 512]; more wait to be accepted.
    #[arg(long = "web.max-connections", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Record every message received to FILE (replay format; see `replay`).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Log format; the level comes from RUST_LOG (default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a configuration file and exit (0 valid, 2 invalid).
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Add or change a user of the embedded broker's password file (or, with
    /// -D, delete it), as mosquitto_passwd does and in its format. The password
    /// is asked on the terminal, or read from standard input's first line with
    /// --stdin. A new file is created 0600.
    Passwd {
        /// The password file ([embedded_broker.auth] password_file).
        file: PathBuf,
        /// The user: an agent's `<site>/<host>`, or a name listed in
        /// collectors or readers.
        user: String,
        /// Delete the user.
        #[arg(short = 'D', long)]
        delete: bool,
        /// Read the password from standard input.
        #[arg(long)]
        stdin: bool,
        /// PBKDF2 iterations (mosquitto_passwd's default).
        #[arg(long, default_value_t = crate::broker::auth::DEFAULT_ITERATIONS)]
        iterations: u32,
    },
    /// Run a recorded stream (JSON lines, as `--record` writes) through the
    /// collector's decode, ingest and signals engine on a simulated clock, and print
    /// the signal timeline as JSON lines. The engine is configured by `--config`.
    Replay {
        /// The replay file (`-` for standard input).
        file: PathBuf,
    },
}

impl Cli {
    /// The values that override the file.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen,
            mqtt_url: self.mqtt.clone(),
            embedded_v4: self.embedded_broker,
            embedded_v5: self.embedded_broker_v5,
            share_group: self.share_group.clone(),
            name: self.name.clone(),
            web_config_file: self.web_config_file.clone(),
            max_connections: self.max_connections,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_and_subcommand_parse() {
        let c = Cli::try_parse_from([
            "sitewatch-collector",
            "--listen",
            "127.0.0.1:1",
            "--mqtt",
            "mqtt://b:1883",
            "--share-group",
            "g",
            "--log-format",
            "json",
            "--web.config.file",
            "web.yml",
            "--web.max-connections",
            "7",
        ])
        .unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.overrides().share_group.as_deref(), Some("g"));
        assert_eq!(
            c.overrides().web_config_file,
            Some(PathBuf::from("web.yml"))
        );
        assert_eq!(c.overrides().max_connections, Some(7));
        let c = Cli::try_parse_from(["sitewatch-collector", "check-config", "x.toml"]).unwrap();
        assert!(matches!(c.command, Some(Command::CheckConfig { .. })));
    }
}
