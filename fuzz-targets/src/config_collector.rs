//! The collector's configuration loaders: the TOML file parsed and resolved
//! into settings with every validation (as `sitewatch-collector check-config`,
//! without the file checks that read the disk), and the exporter-toolkit web
//! config (YAML) parsed.

use std::path::Path;

use sitewatch_collector::config::{Overrides, Settings, parse};

/// One input, as the fuzzer gives it.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = parse(Path::new("collector.toml"), text) {
        let _ = Settings::resolve(&file, &Overrides::default(), "collector.toml");
    }
    let _ = sitewatch_collector::web::config::parse(text);
}
