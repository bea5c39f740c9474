use std::io::Write;

use super::*;
// The tests of a source run in a build that has it (README "Feature sets";
// a gateway build runs the rest).
#[cfg(feature = "host")]
use crate::source::host::config::HostSourceConfig;
#[cfg(feature = "host")]
use crate::source::net::config::{Method, Role};
#[cfg(feature = "smart")]
use crate::source::smart::config::{DiskProtocol, NoCheck, SmartSourceConfig};

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(
        text,
        Path::new("/etc/sitewatch/agent.toml"),
        &Overrides::default(),
    )
}

fn site(s: &str) -> SiteName {
    SiteName::new(s).unwrap()
}

/// `text` is refused as invalid, and the message names the file and `key`.
fn assert_invalid_at(text: &str, key: &str) {
    let e = parse(text).unwrap_err();
    assert_eq!(e.kind(), "invalid", "{text}: {e}");
    assert!(
        e.to_string()
            .starts_with(&format!("/etc/sitewatch/agent.toml: `{key}`")),
        "{text}: {e}"
    );
}

#[cfg(feature = "host")]
#[test]
fn minimal_file_gets_every_default() {
    let c = parse("site = \"bj1\"\n").unwrap();
    assert_eq!(c.site, site("bj1"));
    assert_eq!(c.host, default_host());
    assert_eq!(c.heartbeat, Duration::from_secs(5));
    assert_eq!(c.mqtt.url.to_string(), "mqtt://127.0.0.1:1883");
    assert_eq!(c.mqtt.keepalive, Duration::from_secs(10));
    assert_eq!(c.client_id(), format!("bj1:{}", c.host));
    assert_eq!(c.identity(), format!("bj1/{}", c.host));
    assert_eq!(c.buffer.max_messages, 10_000);
    assert_eq!(
        c.sources.enabled(),
        vec![SourceConfig::Host(HostSourceConfig::default())]
    );
    assert_eq!(
        c.sources.enabled()[0].schedule(),
        Schedule {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(3)
        }
    );
}

#[cfg(feature = "host")]
#[test]
fn durations_are_read_in_humantime_form() {
    let c = parse(
        r#"
site = "bj1"
heartbeat = "2s"
[mqtt]
keepalive = "1m"
reconnect_min = "250ms"
[sources.host]
interval = "1m 30s"
timeout = "1500ms"
"#,
    )
    .unwrap();
    assert_eq!(c.heartbeat, Duration::from_secs(2));
    assert_eq!(c.mqtt.keepalive, Duration::from_secs(60));
    assert_eq!(c.mqtt.reconnect_min, Duration::from_millis(250));
    assert_eq!(c.sources.host.interval, Duration::from_secs(90));
    assert_eq!(c.sources.host.timeout, Duration::from_millis(1500));
}

#[test]
fn unknown_key_is_rejected_naming_file_key_and_expected_keys() {
    let e =
        parse("site = \"bj1\"\n[mqtt]\nurl = \"mqtt://b:1883\"\nkeepalive_s = 5\n").unwrap_err();
    let text = e.to_string();
    assert_eq!(e.kind(), "parse");
    assert!(text.starts_with("/etc/sitewatch/agent.toml"), "{text}");
    assert!(text.contains("`mqtt.keepalive_s`"), "{text}");
    assert!(text.contains("unknown field `keepalive_s`"), "{text}");
    assert!(text.contains("expected one of"), "{text}");
    assert!(text.contains("line 4"), "{text}");
}

#[test]
fn unknown_top_level_section_is_rejected() {
    let e = parse("site = \"bj1\"\n[sources.ipmi_typo]\ninterval = \"5s\"\n").unwrap_err();
    assert!(e.to_string().contains("unknown field `ipmi_typo`"), "{e}");
}

// Reads or expects the host source, which is on by default.
#[cfg(feature = "host")]
#[test]
fn bad_duration_names_the_key_and_the_expected_form() {
    let e = parse("site = \"bj1\"\n[sources.host]\ninterval = \"5 parsecs\"\n").unwrap_err();
    let text = e.to_string();
    assert!(text.contains("`sources.host.interval`"), "{text}");
    assert!(text.contains("expected e.g. \"5s\""), "{text}");
}

#[test]
fn invalid_site_and_missing_site_are_rejected() {
    let e = parse("site = \"BJ1\"\n").unwrap_err();
    assert!(e.to_string().contains("`site`"), "{e}");
    assert!(e.to_string().contains("invalid name"), "{e}");
    let e = parse("host = \"web-01\"\nheartbeat = \"5s\"\n").unwrap_err();
    assert!(e.to_string().contains("missing field `site`"), "{e}");
    assert!(e.to_string().contains("at `(top level)`"), "{e}");
    let e = parse("site = \"bj1\"\n[mqtt]\nurl = \"mqtts://b\"\n[mqtt.tls]\ncert = \"/c\"\n")
        .unwrap_err();
    assert!(e.to_string().contains("at `mqtt.tls`: "), "{e}");
    assert!(e.to_string().contains("missing field `ca`"), "{e}");
}

#[test]
fn flags_override_the_file_and_complete_a_file_without_site() {
    let overrides = Overrides {
        site: Some(site("sh2")),
        host: Some(HostName::new("gw-1").unwrap()),
        mqtt_url: Some("mqtt://10.0.0.1:1884".parse().unwrap()),
    };
    let text = "site = \"bj1\"\nhost = \"web-01\"\n[mqtt]\nurl = \"mqtt://broker\"\n";
    let c = Config::parse(text, Path::new("a.toml"), &overrides).unwrap();
    assert_eq!(c.site, site("sh2"));
    assert_eq!(c.host.as_str(), "gw-1");
    assert_eq!(c.mqtt.url.to_string(), "mqtt://10.0.0.1:1884");
    assert_eq!(c.client_id(), "sh2:gw-1");
    let c = Config::parse(
        "[mqtt]\nkeepalive = \"5s\"\n",
        Path::new("a.toml"),
        &overrides,
    )
    .unwrap();
    assert_eq!(c.site, site("sh2"));
}

#[cfg(feature = "host")]
#[test]
fn without_a_file_the_site_flag_is_required() {
    let e = Config::load(None, &Overrides::default()).unwrap_err();
    assert_eq!(e.kind(), "missing_site");
    let c = Config::load(
        None,
        &Overrides {
            site: Some(site("bj1")),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert!(c.sources.host.enabled);
}

#[test]
fn load_names_a_missing_file() {
    let e = Config::load(
        Some(Path::new("/nonexistent/agent.toml")),
        &Overrides::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), "read");
    assert!(
        e.to_string()
            .starts_with("/nonexistent/agent.toml: cannot read"),
        "{e}"
    );
}

// Reads or expects the host source, which is on by default.
#[cfg(feature = "host")]
#[test]
fn rules_serde_cannot_express_are_checked() {
    let cases = [
        ("[mqtt]\nkeepalive = \"1500ms\"", "mqtt.keepalive"),
        ("[mqtt]\nurl = \"mqtts://b\"", "mqtt.tls.ca"),
        (
            "[mqtt]\nurl = \"mqtt://b\"\n[mqtt.tls]\nca = \"/ca.pem\"",
            "mqtt.tls",
        ),
        (
            "[mqtt]\nurl = \"mqtts://b\"\n[mqtt.tls]\nca = \"/ca.pem\"\ncert = \"/c.pem\"",
            "mqtt.tls",
        ),
        ("[buffer]\nmax_messages = 0", "buffer.max_messages"),
        ("[buffer]\nmax_bytes = 1000", "buffer.max_bytes"),
        ("heartbeat = \"10ms\"", "heartbeat"),
        ("[labels]\nsite = \"x\"", "labels"),
        ("[labels]\n\"Room\" = \"x\"", "labels"),
        ("[sources.host]\ntimeout = \"0s\"", "sources.*.timeout"),
    ];
    for (body, key) in cases {
        assert_invalid_at(&format!("site = \"bj1\"\n{body}\n"), key);
    }
}

#[test]
fn broker_urls_parse_with_default_ports() {
    let cases = [
        ("mqtt://127.0.0.1", false, "127.0.0.1", 1883),
        ("mqtt://broker:1884", false, "broker", 1884),
        (
            "mqtts://broker.example.com",
            true,
            "broker.example.com",
            8883,
        ),
        ("mqtts://[::1]:8884", true, "::1", 8884),
        ("mqtt://[::1]", false, "::1", 1883),
    ];
    for (s, tls, host, port) in cases {
        let u: BrokerUrl = s.parse().unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (tls, host, port), "{s}");
        assert_eq!(u.to_string().parse::<BrokerUrl>().unwrap(), u);
    }
    for bad in [
        "tcp://b",
        "b:1883",
        "mqtt://",
        "mqtt://b:0",
        "mqtt://b:x",
        "mqtt://u@b",
    ] {
        let e = bad.parse::<BrokerUrl>().unwrap_err();
        assert!(e.contains("expected mqtt://host[:port]"), "{bad}: {e}");
    }
}

#[test]
fn effective_config_prints_as_toml_that_loads_back_identically() {
    let c = parse(
        "site = \"bj1\"\nhost = \"web-01\"\n[labels]\nroom = \"a1\"\n[mqtt]\nusername = \"agent\"\n",
    )
    .unwrap();
    let text = c.to_toml().unwrap();
    assert!(text.contains("keepalive = \"10s\""), "{text}");
    assert_eq!(parse(&text).unwrap(), c);
}

#[test]
fn host_names_are_sanitized() {
    assert_eq!(
        sanitize_host("Web01.Example.COM").as_str(),
        "web01.example.com"
    );
    assert_eq!(sanitize_host("my host_1").as_str(), "my-host_1");
    assert_eq!(sanitize_host("__x").as_str(), "x");
    assert_eq!(sanitize_host("").as_str(), "localhost");
    assert_eq!(sanitize_host(&"a".repeat(100)).as_str().len(), 64);
}

#[cfg(feature = "host")]
#[test]
fn shipped_example_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/agent.toml");
    let c = Config::load(Some(&path), &Overrides::default()).unwrap();
    assert_eq!(c.site, site("bj1"));
    assert_eq!(c.labels.get("rack").map(String::as_str), Some("r12"));
    let net = c.sources.net.as_ref().unwrap();
    assert_eq!(net.targets.len(), 3);
    assert_eq!(net.targets[2].method(), Method::Tcp);
    // The host table writes out every default, pattern lists included.
    assert_eq!(
        c.sources.host,
        crate::source::host::config::HostSourceConfig::default()
    );
}

#[test]
fn a_config_file_on_disk_is_loaded_and_errors_name_it() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "site = \"bj1\"\nbogus = 1").unwrap();
    let e = Config::load(Some(f.path()), &Overrides::default()).unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with(&f.path().display().to_string()), "{text}");
    assert!(text.contains("`bogus`"), "{text}");
}

#[cfg(feature = "smart")]
#[test]
fn smart_is_disabled_without_its_table_and_gets_every_default_with_it() {
    let c = parse("site = \"bj1\"\n").unwrap();
    assert_eq!(c.sources.smart, None);
    let c = parse("site = \"bj1\"\n[sources.smart]\n").unwrap();
    let smart = c.sources.smart.clone().unwrap();
    assert_eq!(smart, SmartSourceConfig::default());
    assert_eq!(smart.smartctl, Path::new("/usr/sbin/smartctl"));
    assert_eq!(smart.interval, Duration::from_secs(600));
    assert_eq!(smart.timeout, Duration::from_secs(30));
    assert_eq!(smart.rescan, Duration::from_secs(3600));
    assert_eq!(smart.max_concurrent, 1);
    assert_eq!(smart.nocheck, NoCheck::Standby);
    assert!(smart.devices.is_empty());
    let enabled = c.sources.enabled();
    assert_eq!(enabled[1].name(), "smart");
    assert_eq!(
        enabled[1].schedule(),
        Schedule {
            interval: Duration::from_secs(600),
            timeout: Duration::from_secs(600)
        },
        "the poll as a whole has one interval; `timeout` is per smartctl run"
    );
}

#[cfg(feature = "smart")]
#[test]
fn smart_devices_patterns_and_nocheck_overrides_are_read() {
    let c = parse(
        r#"
site = "bj1"
[sources.smart]
smartctl = "/opt/smartmontools/sbin/smartctl"
interval = "5m"
timeout = "20s"
rescan = "30m"
max_concurrent = 2
include = ["sd*", "nvme*"]
exclude = ["sdz"]
nocheck = "sleep"
devices = [
  { path = "/dev/sda", type = "sat" },
  { path = "/dev/bus/0", type = "megaraid,1", nocheck = "never" },
  { path = "/dev/nvme0" },
]
[sources.smart.nocheck_by_protocol]
nvme = "never"
scsi = "idle"
"#,
    )
    .unwrap();
    let s = c.sources.smart.unwrap();
    assert_eq!(s.timeout, Duration::from_secs(20));
    assert_eq!(s.max_concurrent, 2);
    assert_eq!(s.nocheck, NoCheck::Sleep);
    assert_eq!(s.devices.len(), 3);
    assert_eq!(s.devices[1].dev_type.as_deref(), Some("megaraid,1"));
    assert_eq!(s.devices[1].nocheck, Some(NoCheck::Never));
    assert_eq!(s.devices[2].dev_type, None);
    assert_eq!(
        s.nocheck_by_protocol,
        [
            (DiskProtocol::Nvme, NoCheck::Never),
            (DiskProtocol::Scsi, NoCheck::Idle)
        ]
        .into()
    );
}

#[cfg(feature = "smart")]
#[test]
fn smart_config_prints_back_as_toml_that_loads_again() {
    let text = "site = \"bj1\"\n[sources.smart]\ndevices = [{ path = \"/dev/sda\", type = \"sat\" }]\n[sources.smart.nocheck_by_protocol]\nnvme = \"never\"\n";
    let c = parse(text).unwrap();
    let printed = c.to_toml().unwrap();
    assert!(printed.contains("[sources.smart]"), "{printed}");
    assert_eq!(parse(&printed).unwrap(), c);
}

#[cfg(feature = "smart")]
#[test]
fn smart_unknown_keys_and_bad_choices_are_rejected_naming_the_key() {
    for (text, key, needle) in [
        (
            "[sources.smart]\nintervall = \"5m\"\n",
            "sources.smart.intervall",
            "unknown field `intervall`",
        ),
        (
            "[sources.smart]\nnocheck = \"deep\"\n",
            "sources.smart.nocheck",
            "unknown variant `deep`",
        ),
        (
            "[sources.smart.nocheck_by_protocol]\nsata = \"never\"\n",
            "sources.smart.nocheck_by_protocol.sata",
            "unknown variant `sata`",
        ),
        (
            "[sources.smart]\ndevices = [{ path = \"/dev/sda\", kind = \"sat\" }]\n",
            "sources.smart.devices",
            "unknown field `kind`",
        ),
    ] {
        let e = parse(&format!("site = \"bj1\"\n{text}")).unwrap_err();
        let msg = e.to_string();
        assert_eq!(e.kind(), "parse", "{msg}");
        assert!(msg.starts_with("/etc/sitewatch/agent.toml"), "{msg}");
        assert!(msg.contains(&format!("`{key}`")), "{msg}");
        assert!(msg.contains(needle), "{msg}");
    }
}

#[cfg(feature = "smart")]
#[test]
fn smart_values_serde_cannot_check_are_rejected_naming_the_key() {
    for (text, key) in [
        ("smartctl = \"smartctl\"", "sources.smart.smartctl"),
        ("timeout = \"6m\"", "sources.smart.timeout"),
        ("timeout = \"0s\"", "sources.smart.timeout"),
        ("max_concurrent = 0", "sources.smart.max_concurrent"),
        ("rescan = \"10ms\"", "sources.smart.rescan"),
        ("include = [\"\"]", "sources.smart.include"),
        ("devices = [{ path = \"sda\" }]", "sources.smart.devices"),
        (
            "devices = [{ path = \"/dev/sda\", type = \"-x\" }]",
            "sources.smart.devices",
        ),
        (
            "devices = [{ path = \"/dev/sda\" }, { path = \"/dev/sda\", type = \"sat\" }]",
            "sources.smart.devices",
        ),
    ] {
        assert_invalid_at(&format!("site = \"bj1\"\n[sources.smart]\n{text}\n"), key);
    }
}

// Reads or expects the host source, which is on by default.
#[cfg(feature = "host")]
#[test]
fn modbus_devices_are_read_and_checked() {
    let text = r#"
site = "bj1"
[sources.modbus]
interval = "5s"
[[sources.modbus.devices]]
name = "ups-a"
address = "tcp://10.1.2.3"
profile = "apc-smart-ups"
[[sources.modbus.devices]]
name = "probe-1"
address = "rtu:///dev/ttyUSB0?baud=9600&parity=E&stop=1"
unit = 7
profile = "generic-xy-md02"
interval = "30s"
timeout = "500ms"
"#;
    let c = parse(text).unwrap();
    let names: Vec<&str> = c.sources.enabled().iter().map(|s| s.name()).collect();
    assert_eq!(names, ["host", "modbus"]);
    let m = c.sources.modbus.as_ref().unwrap();
    assert_eq!(m.devices.len(), 2);
    assert_eq!(m.devices[1].interval, Some(Duration::from_secs(30)));
    assert_eq!(m.devices[1].timeout, Duration::from_millis(500));
    assert!(m.devices[1].address.is_rtu());
    // The effective config prints and loads back identically.
    let printed = toml::to_string(&c).unwrap();
    assert_eq!(parse(&printed).unwrap(), c);

    let bad_address = text.replace("tcp://10.1.2.3", "udp://10.1.2.3");
    let err = parse(&bad_address).unwrap_err();
    assert_eq!(err.kind(), "parse");
    assert!(err.to_string().contains("sources.modbus.devices"), "{err}");

    let twice = text.replace("probe-1", "ups-a");
    let err = parse(&twice).unwrap_err();
    assert!(err.to_string().contains("used twice"), "{err}");

    let bad_unit = text.replace("unit = 7", "unit = 248");
    assert!(
        parse(&bad_unit)
            .unwrap_err()
            .to_string()
            .contains("1..=247")
    );

    let fast = text.replace("interval = \"30s\"", "interval = \"1s\"");
    assert!(
        parse(&fast)
            .unwrap_err()
            .to_string()
            .contains("shorter than the source's")
    );
}

// Reads or expects the host source, which is on by default.
#[cfg(feature = "host")]
#[test]
fn net_targets_get_defaults_implied_methods_and_the_shortest_interval_as_tick() {
    let c = parse(
        r#"
site = "bj1"
[[sources.net.targets]]
name = "tor"
address = "10.0.0.1"
role = "switch"
interval = "2s"
[[sources.net.targets]]
name = "api"
address = "[2001:db8::1]:443"
role = "service"
rtt_warning = "50ms"
"#,
    )
    .unwrap();
    let net = c.sources.net.as_ref().unwrap();
    let [tor, api] = &net.targets[..] else {
        panic!("{net:?}")
    };
    assert_eq!(tor.method(), Method::Icmp);
    assert_eq!(tor.role, Role::Switch);
    assert_eq!(tor.timeout, Duration::from_secs(1));
    assert_eq!(tor.rtt_critical, Duration::from_millis(500));
    assert_eq!((tor.loss_warning, tor.loss_critical), (0.2, 0.5));
    assert_eq!(
        (tor.window, tor.window_duration),
        (20, Duration::from_secs(60))
    );
    assert_eq!(api.method(), Method::Tcp);
    assert_eq!(api.interval, Duration::from_secs(5));
    assert_eq!(api.rtt_warning, Duration::from_millis(50));
    let endpoint = api.endpoint().unwrap();
    assert_eq!(
        (endpoint.host.as_str(), endpoint.port),
        ("2001:db8::1", Some(443))
    );
    let enabled = c.sources.enabled();
    assert_eq!(enabled[1].name(), "net");
    assert_eq!(
        enabled[1].schedule(),
        Schedule {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(2)
        }
    );
    // The effective config prints and loads back.
    assert_eq!(parse(&c.to_toml().unwrap()).unwrap(), c);
}

#[test]
fn net_unknown_target_key_and_bad_role_name_the_key() {
    let e = parse(
        "site = \"bj1\"\n[[sources.net.targets]]\nname = \"a\"\naddress = \"10.0.0.1\"\nrole = \"switch\"\nrtt_warn = \"1s\"\n",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("`sources.net.targets.rtt_warn`"),
        "{e}"
    );
    assert!(e.to_string().contains("unknown field `rtt_warn`"), "{e}");
    let e = parse(
        "site = \"bj1\"\n[[sources.net.targets]]\nname = \"a\"\naddress = \"10.0.0.1\"\nrole = \"core\"\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("`sources.net.targets.role`"), "{e}");
    assert!(e.to_string().contains("peer_site"), "{e}");
    let e = parse("site = \"bj1\"\n[[sources.net.targets]]\nname = \"a\"\nrole = \"switch\"\n")
        .unwrap_err();
    assert!(e.to_string().contains("at `sources.net.targets`"), "{e}");
    assert!(e.to_string().contains("missing field `address`"), "{e}");
}

// Reads or expects the host source, which is on by default.
#[cfg(feature = "host")]
#[test]
fn net_rules_serde_cannot_express_are_checked() {
    let target = |extra: &str| {
        format!("[[sources.net.targets]]\nname = \"t\"\nrole = \"router\"\n{extra}\n")
    };
    let cases = [
        ("[sources.net]".to_owned(), "sources.net.targets"),
        (
            target("address = \"10.0.0.1\"\nmethod = \"tcp\""),
            "sources.net.targets.address",
        ),
        (
            target("address = \"10.0.0.1:22\"\nmethod = \"icmp\""),
            "sources.net.targets.address",
        ),
        (
            target("address = \"10.0.0.1:0\""),
            "sources.net.targets.address",
        ),
        (target("address = \"a b\""), "sources.net.targets.address"),
        (
            target("address = \"[10.0.0.1]:22\""),
            "sources.net.targets.address",
        ),
        (
            format!("{}{}", target("address = \"a\""), target("address = \"b\"")),
            "sources.net.targets.name",
        ),
        (
            target("address = \"a\"\ntimeout = \"6s\""),
            "sources.net.targets.timeout",
        ),
        (
            target("address = \"a\"\ninterval = \"50ms\"\ntimeout = \"10ms\""),
            "sources.net.targets.interval",
        ),
        (
            target("address = \"a\"\nrtt_warning = \"1s\""),
            "sources.net.targets.rtt_warning",
        ),
        (
            target("address = \"a\"\nloss_warning = 0.6"),
            "sources.net.targets.loss_warning",
        ),
        (
            target("address = \"a\"\nloss_critical = 20.0"),
            "sources.net.targets.loss_warning",
        ),
        (
            target("address = \"a\"\nwindow = 0"),
            "sources.net.targets.window",
        ),
    ];
    for (body, key) in cases {
        assert_invalid_at(&format!("site = \"bj1\"\n{body}\n"), key);
    }
    // Disabled: kept in the file, not checked, not run.
    let c = parse("site = \"bj1\"\n[sources.net]\nenabled = false\n").unwrap();
    assert_eq!(c.sources.enabled().len(), 1);
}

#[cfg(feature = "ipmi")]
const IPMI: &str = r#"
site = "bj1"
[sources.ipmi]
local = true
interval = "15s"
state_dir = "/var/lib/sitewatch/ipmi"
[[sources.ipmi.bmcs]]
name = "r12-bmc"
address = "10.1.12.1:623"
username = "monitor"
password_file = "/etc/sitewatch/r12-bmc.password"
[[sources.ipmi.bmcs]]
name = "r13-bmc"
address = "[fd00::13]"
username = "monitor"
password_file = "/etc/sitewatch/r13-bmc.password"
"#;

#[cfg(feature = "ipmi")]
#[test]
fn ipmi_section_is_read_with_defaults_and_enabled() {
    let c = parse(IPMI).unwrap();
    let ipmi = c.sources.ipmi.clone().unwrap();
    assert!(ipmi.local);
    assert_eq!(ipmi.timeout, Duration::from_secs(5));
    assert_eq!(ipmi.command_timeout, Duration::from_secs(1));
    assert_eq!(ipmi.bmcs.len(), 2);
    assert_eq!(ipmi.bmcs[1].name, "r13-bmc");
    let enabled = c.sources.enabled();
    assert_eq!(enabled[1].name(), "ipmi");
    assert_eq!(enabled[1].schedule().interval, Duration::from_secs(15));
    // Without the section the source is off.
    assert!(parse("site = \"bj1\"\n").unwrap().sources.ipmi.is_none());
    // check-config's output loads back identically.
    let again = parse(&c.to_toml().unwrap()).unwrap();
    assert_eq!(again, c);
}

#[cfg(feature = "ipmi")]
#[test]
fn unknown_ipmi_keys_are_rejected_naming_file_and_key() {
    let e = parse(&IPMI.replace("local = true", "locale = true")).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("/etc/sitewatch/agent.toml: at `sources.ipmi.locale`"),
        "{text}"
    );
    let e = parse(&IPMI.replace(
        "username = \"monitor\"\npassword_file = \"/etc/sitewatch/r13",
        "user = \"monitor\"\npassword_file = \"/etc/sitewatch/r13",
    ))
    .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("`sources.ipmi.bmcs.user`"), "{text}");
    assert!(text.contains("unknown field `user`"), "{text}");
    let e = parse(&IPMI.replace("address = \"10.1.12.1:623\"\n", "")).unwrap_err();
    assert!(e.to_string().contains("missing field `address`"), "{e}");
}

#[cfg(feature = "ipmi")]
#[test]
fn ipmi_rules_serde_cannot_express_are_checked() {
    let cases = [
        (
            IPMI.replace("\"r13-bmc\"", "\"r12-bmc\""),
            "sources.ipmi.bmcs.name",
        ),
        (
            IPMI.replace("\"r13-bmc\"", "\"local\""),
            "sources.ipmi.bmcs.name",
        ),
        (
            IPMI.replace("\"r13-bmc\"", "\"../etc\""),
            "sources.ipmi.bmcs.name",
        ),
        (IPMI.replace(":623\"", ":0\""), "sources.ipmi.bmcs.address"),
        (
            IPMI.replace("[fd00::13]", "[fd00::13"),
            "sources.ipmi.bmcs.address",
        ),
        (
            IPMI.replace("interval = \"15s\"", "command_timeout = \"6s\""),
            "sources.ipmi.command_timeout",
        ),
        (
            IPMI.replace(
                "\"monitor\"\npassword_file = \"/etc/sitewatch/r13",
                "\"a-user-name-of-17b\"\npassword_file = \"/etc/sitewatch/r13",
            ),
            "sources.ipmi.bmcs.username",
        ),
        (
            "site = \"bj1\"\n[sources.ipmi]\nlocal = false\n".to_owned(),
            "sources.ipmi",
        ),
    ];
    for (text, key) in cases {
        assert_invalid_at(&text, key);
    }
}

#[test]
fn one_broker_is_the_default_and_mqtt_url_names_it() {
    let c = parse("site = \"bj1\"\nhost = \"web-01\"\n[mqtt]\nurl = \"mqtt://b1.example:1884\"\nusername = \"bj1/web-01\"\n").unwrap();
    let brokers = c.brokers();
    assert_eq!(brokers.len(), 1);
    assert_eq!(brokers[0].name, "b1.example:1884");
    assert_eq!(brokers[0].url.to_string(), "mqtt://b1.example:1884");
    assert_eq!(brokers[0].client_id, "bj1:web-01");
    assert_eq!(brokers[0].username.as_deref(), Some("bj1/web-01"));
    assert_eq!(c.mqtt.stop_timeout, Duration::from_secs(10));
    let c = parse("site = \"bj1\"\n").unwrap();
    assert_eq!(c.brokers()[0].name, "127.0.0.1:1883");
}

#[test]
fn several_brokers_each_get_their_url_credentials_tls_and_client_id() {
    let c = parse(
        r#"
site = "bj1"
host = "web-01"
[mqtt]
keepalive = "5s"
stop_timeout = "20s"
[[mqtt.brokers]]
name = "bj1"
url = "mqtts://broker.bj1.example"
username = "bj1/web-01"
password_file = "/etc/sitewatch/bj1.password"
[mqtt.brokers.tls]
ca = "/etc/sitewatch/bj1-ca.pem"
[[mqtt.brokers]]
url = "mqtt://10.2.0.5"
client_id = "web-01-bj1"
"#,
    )
    .unwrap();
    let b = c.brokers();
    assert_eq!(b.len(), 2);
    assert_eq!((b[0].name.as_str(), b[0].url.port), ("bj1", 8883));
    assert_eq!(
        b[0].tls.as_ref().unwrap().ca,
        PathBuf::from("/etc/sitewatch/bj1-ca.pem")
    );
    assert_eq!(b[0].client_id, "bj1:web-01");
    assert_eq!(
        (b[1].name.as_str(), b[1].client_id.as_str()),
        ("10.2.0.5:1883", "web-01-bj1")
    );
    assert!(b[1].username.is_none());
    assert_eq!(c.mqtt.keepalive, Duration::from_secs(5));
    assert_eq!(c.mqtt.stop_timeout, Duration::from_secs(20));
    // check-config prints what loads back the same.
    let again = Config::parse(
        &c.to_toml().unwrap(),
        Path::new("x.toml"),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(again, c);
    assert_eq!(again.brokers(), b);
}

#[test]
fn broker_lists_are_checked_naming_the_key() {
    let two = |extra: &str| {
        format!(
            "site = \"bj1\"\n[mqtt]\n{extra}\n[[mqtt.brokers]]\nurl = \"mqtt://a\"\n[[mqtt.brokers]]\nurl = \"mqtt://b\"\n"
        )
    };
    assert_invalid_at(&two("url = \"mqtt://c\""), "mqtt.brokers");
    assert_invalid_at(&two("username = \"u\""), "mqtt.brokers");
    assert_invalid_at(
        "site = \"bj1\"\n[[mqtt.brokers]]\nurl = \"mqtt://a\"\n[[mqtt.brokers]]\nurl = \"mqtt://a:1883\"\n",
        "mqtt.brokers.name",
    );
    assert_invalid_at(
        "site = \"bj1\"\n[[mqtt.brokers]]\nname = \"a b\"\nurl = \"mqtt://a\"\n",
        "mqtt.brokers.name",
    );
    assert_invalid_at(
        "site = \"bj1\"\n[[mqtt.brokers]]\nurl = \"mqtts://a\"\n",
        "mqtt.brokers.tls.ca",
    );
    assert_invalid_at(
        "site = \"bj1\"\n[[mqtt.brokers]]\nurl = \"mqtt://a\"\n[mqtt.brokers.tls]\nca = \"/ca\"\n",
        "mqtt.brokers.tls",
    );
    let many: String = (0..9)
        .map(|i| format!("[[mqtt.brokers]]\nurl = \"mqtt://b{i}\"\n"))
        .collect();
    assert_invalid_at(&format!("site = \"bj1\"\n{many}"), "mqtt.brokers");
    let e = parse("site = \"bj1\"\n[[mqtt.brokers]]\nurl = \"mqtt://a\"\nport = 1\n").unwrap_err();
    assert!(e.to_string().contains("unknown field `port`"), "{e}");
    // --mqtt cannot stand for a list.
    let overrides = Overrides {
        mqtt_url: Some("mqtt://x".parse().unwrap()),
        ..Overrides::default()
    };
    let e = Config::parse(&two(""), Path::new("a.toml"), &overrides).unwrap_err();
    assert!(e.to_string().contains("`mqtt.brokers`"), "{e}");
}

#[test]
fn the_disk_buffer_and_its_fsync_policy_are_read_and_checked() {
    let c = parse("site = \"bj1\"\n").unwrap();
    assert_eq!(c.buffer.dir, None);
    assert_eq!(c.buffer.fsync, FsyncPolicy::Every(Duration::from_secs(1)));
    let c = parse("site = \"bj1\"\n[buffer]\ndir = \"/var/lib/sitewatch/buffer\"\nfsync = \"always\"\nmax_bytes = 134217728\nmax_memory_bytes = 8388608\n").unwrap();
    assert_eq!(
        c.buffer.dir,
        Some(PathBuf::from("/var/lib/sitewatch/buffer"))
    );
    assert_eq!(c.buffer.fsync, FsyncPolicy::Always);
    assert_eq!(c.buffer.max_memory_bytes, 8 * 1024 * 1024);
    let again = Config::parse(
        &c.to_toml().unwrap(),
        Path::new("x.toml"),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(again, c);
    let c = parse("site = \"bj1\"\n[buffer]\nfsync = \"200ms\"\n").unwrap();
    assert_eq!(
        c.buffer.fsync,
        FsyncPolicy::Every(Duration::from_millis(200))
    );
    let e = parse("site = \"bj1\"\n[buffer]\nfsync = \"sometimes\"\n").unwrap_err();
    assert!(
        e.to_string().contains("`buffer.fsync`") && e.to_string().contains("\"always\""),
        "{e}"
    );
    assert_invalid_at("site = \"bj1\"\n[buffer]\nfsync = \"2m\"\n", "buffer.fsync");
    assert_invalid_at(
        "site = \"bj1\"\n[buffer]\nmax_memory_bytes = 1000\n",
        "buffer.max_memory_bytes",
    );
    assert_invalid_at(
        "site = \"bj1\"\n[mqtt]\nstop_timeout = \"1h\"\n",
        "mqtt.stop_timeout",
    );
}

#[cfg(feature = "snmp")]
#[test]
fn snmp_devices_profiles_and_credential_files_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let secret = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let auth = secret("auth", "authpass123\n");
    let short = secret("short", "abc\n");
    let bad_profile = secret(
        "bad.toml",
        "[device]\nvendor = \"v\"\nmodel = \"m\"\nclass = \"ups\"\nmib = \"M\"\nsource = \"s\"\nverified = true\n\
         [[scalar]]\nname = \"x\"\noid = \"1.3.6.one\"\nq = \"ups_on_battery\"\n",
    );
    let v3 = |file: &str| {
        format!(
            "site = \"bj1\"\n[sources.snmp]\n[[sources.snmp.devices]]\nname = \"ups-a\"\naddress = \"10.0.0.5\"\n\
             profile = \"ups-mib\"\nversion = \"v3\"\nuser = \"sw\"\nauth = \"sha256\"\nauth_password_file = \"{file}\"\n"
        )
    };
    let c = parse(&v3(&auth)).unwrap();
    let snmp = c.sources.snmp.as_ref().unwrap();
    assert_eq!(
        snmp.devices[0].endpoint().unwrap(),
        ("10.0.0.5".to_owned(), 161)
    );
    assert_eq!(c.sources.enabled().last().unwrap().name(), "snmp");
    assert_invalid_at(&v3(&short), "sources.snmp.devices.auth_password_file");
    assert_invalid_at(
        &v3("/nonexistent/auth"),
        "sources.snmp.devices.auth_password_file",
    );
    let device = |extra: &str| {
        format!(
            "site = \"bj1\"\n[sources.snmp]\n[[sources.snmp.devices]]\nname = \"d\"\naddress = \"10.0.0.5\"\nprofile = \"ups-mib\"\n{extra}"
        )
    };
    assert_invalid_at(
        &device("privacy = \"aes\"\n"),
        "sources.snmp.devices.version",
    );
    assert_invalid_at(
        &device("max_repetitions = 500\n"),
        "sources.snmp.devices.max_repetitions",
    );
    assert_invalid_at(
        &device("labels = { host = \"x\" }\n"),
        "sources.snmp.devices.labels",
    );
    let e = parse(&device("").replace("ups-mib", &bad_profile))
        .unwrap_err()
        .to_string();
    assert!(e.contains("sources.snmp.devices.profile"), "{e}");
    assert!(e.contains("bad.toml: point `x`"), "{e}");
    assert!(e.contains("numeric OID"), "{e}");
    let e = parse(&device("").replace("10.0.0.5", "[::1"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("sources.snmp.devices.address"), "{e}");
}
