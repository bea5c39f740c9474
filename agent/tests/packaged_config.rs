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
    assert_eq!(e.kind(), "parse", "{e}");
    assert!(e.to_string().contains("`site`"), "{e}");
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
