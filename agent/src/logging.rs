//! Logs through `tracing` to stderr: human text or JSON lines, level from `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::{filter::Targets, layer::SubscriberExt, util::SubscriberInitExt};

/// `--log-format`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber; `RUST_LOG` sets the level (default `info`).
///
/// `RUST_LOG` is a list of `level` and `target=level` directives (`info`,
/// `warn,sitewatch_agent::source::snmp=debug`), read by tracing-subscriber's
/// `Targets` rather than its `EnvFilter`: the span and field filters of the
/// latter (`[span{field=value}]`) need a regex engine the gateway build has no
/// room for. A value that does not parse falls back to `info`, as before.
pub fn init(format: LogFormat) {
    let filter = filter_from(std::env::var("RUST_LOG").ok().as_deref());
    // Colours only on a terminal: journald and log files get plain text.
    let ansi = std::io::stderr().is_terminal();
    let registry = tracing_subscriber::registry().with(filter);
    // A second init (tests calling into the CLI) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_ansi(ansi)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
}

/// The filter for a `RUST_LOG` value: `info` when unset, empty or unparsable.
fn filter_from(value: Option<&str>) -> Targets {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::filter_from;

    #[test]
    fn rust_log_unset_empty_or_unparsable_logs_at_info() {
        for value in [None, Some(""), Some("  "), Some("sitewatch_agent=loud")] {
            let filter = filter_from(value);
            assert!(
                filter.would_enable("sitewatch_agent", &Level::INFO),
                "{value:?}"
            );
            assert!(
                !filter.would_enable("sitewatch_agent", &Level::DEBUG),
                "{value:?}"
            );
        }
    }

    #[test]
    fn rust_log_sets_a_default_level_and_per_target_levels() {
        let filter = filter_from(Some("warn,sitewatch_agent::source::snmp=debug"));
        assert!(filter.would_enable("sitewatch_agent::source::snmp::device", &Level::DEBUG));
        assert!(!filter.would_enable("sitewatch_agent::publisher", &Level::INFO));
        assert!(filter.would_enable("rumqttc::state", &Level::WARN));
        assert!(!filter.would_enable("rumqttc::state", &Level::INFO));
    }
}
