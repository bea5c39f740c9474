//! The configuration the deb and rpm install as /etc/sitewatch/agent.toml
//! (packaging/config/agent.toml): valid in every key, but refused until the
//! operator names the site, so that an unconfigured agent never publishes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use sitewatch_agent::config::{Config, Overrides};
use sitewatch_protocol::SiteName;

fn packaged() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/config/agent.toml"
    ))
}

#[test]
fn packaged_config_refuses_the_placeholder_site() {
    let e = Config::load(Some(packaged()), &Overrides::default()).unwrap_err();
    assert_eq!(e.kind(), "placeholder", "{e}");
    let message = e.to_string();
    assert!(
        message.contains("`site`") && message.contains("\"CHANGE-ME\" is the packaged placeholder"),
        "{message}"
    );
    // Lowercased it would be a valid name: still the placeholder.
    let text = std::fs::read_to_string(packaged())
        .unwrap()
        .replace("CHANGE-ME", "change-me");
    let e = Config::parse(&text, packaged(), &Overrides::default()).unwrap_err();
    assert_eq!(e.kind(), "placeholder", "{e}");
}

#[test]
fn packaged_config_loads_once_the_site_is_set() {
    let overrides = Overrides {
        site: Some(SiteName::new("bj1").unwrap()),
        ..Overrides::default()
    };
    let c = Config::load(Some(packaged()), &overrides).unwrap();
    assert_eq!(c.site.as_str(), "bj1");
    assert_eq!(c.mqtt.url.to_string(), "mqtt://127.0.0.1:1883");
    assert_eq!(c.sources.enabled().len(), 1, "only the host source is on");
}

/// The machine-room gateway's configuration (firmware-config/gateway/agent.toml):
/// an RS-485 bus with a UPS and two probes, and two remote BMCs.
#[test]
fn gateway_config_loads_with_its_bus_and_bmcs() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../firmware-config/gateway/agent.toml"
    ));
    let c = Config::load(Some(path), &Overrides::default()).unwrap();
    let modbus = c.sources.modbus.as_ref().expect("a modbus bus");
    assert_eq!(modbus.devices.len(), 3, "a UPS and two probes");
    let ipmi = c.sources.ipmi.as_ref().expect("remote BMCs");
    assert_eq!(ipmi.bmcs.len(), 2);
    let names: Vec<&str> = c.sources.enabled().iter().map(|s| s.name()).collect();
    assert!(
        names.contains(&"modbus") && names.contains(&"ipmi"),
        "{names:?}"
    );
}
