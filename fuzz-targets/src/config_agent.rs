//! The agent's configuration loader: TOML parse, the placeholder check, the
//! command-line overrides and the whole validation, as `sitewatch-agent
//! check-config` runs them (the file checks, which read the disk, excepted).

use std::path::Path;

use sitewatch_agent::config::{Config, Overrides};
use sitewatch_protocol::SiteName;

/// One input, as the fuzzer gives it.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("agent.toml");
    if let Ok(config) = Config::parse(text, path, &Overrides::default()) {
        let _ = config.brokers();
        let _ = config.client_id();
        // What `--print-config` writes.
        let _ = config.to_toml();
    }
    // With `--site`, which is inserted before deserializing.
    if let Ok(site) = SiteName::new("dc1") {
        let overrides = Overrides {
            site: Some(site),
            ..Overrides::default()
        };
        let _ = Config::parse(text, path, &overrides);
    }
}
