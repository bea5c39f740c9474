//! `[sources.modbus]`: UPS, generator, cooling and environment devices read
//! over Modbus TCP, RTU (RS-485) or RTU over TCP, each through a profile.
//!
//! ```toml
//! [sources.modbus]
//! interval = "5s"     # default poll interval of the devices
//! timeout = "20s"     # one whole poll of every device (the scheduler's limit)
//!
//! [[sources.modbus.devices]]
//! name = "ups-a"
//! address = "tcp://10.1.2.3:502"            # or rtu:///dev/ttyUSB0?baud=9600&parity=N&stop=1
//! unit = 1                                  #    or rtu+tcp://10.1.2.4:4001
//! profile = "apc-smart-ups"                 # a shipped profile, or a file path
//! interval = "5s"                           # optional, at least the source's
//! timeout = "1s"                            # each request
//! ```

use std::{collections::BTreeMap, fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{
    config::{default_true, duration, opt_duration},
    endpoint::{Endpoint, join},
};

/// `[sources.modbus]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusSourceConfig {
    /// Set to false to stop reading Modbus devices.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How often the source runs; a device is read when its own interval is due.
    #[serde(default = "default_interval", with = "duration")]
    pub interval: Duration,
    /// How long one poll of every device may take: above the longest bus's
    /// requests times their timeout, so that dead units cannot hit it.
    #[serde(default = "default_poll_timeout", with = "duration")]
    pub timeout: Duration,
    #[serde(default)]
    pub devices: Vec<ModbusDeviceConfig>,
}

impl Default for ModbusSourceConfig {
    fn default() -> Self {
        ModbusSourceConfig {
            enabled: true,
            interval: default_interval(),
            timeout: default_poll_timeout(),
            devices: Vec::new(),
        }
    }
}

/// `[[sources.modbus.devices]]`: one Modbus unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusDeviceConfig {
    /// The readings' `dev`, unique within the source.
    pub name: String,
    pub address: ModbusAddress,
    /// Unit (slave) id, 1..=247; default the profile's, else 1.
    #[serde(default)]
    pub unit: Option<u8>,
    /// A shipped profile's name (`apc-smart-ups`) or a profile file's path.
    pub profile: String,
    /// Poll interval; default the source's.
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub interval: Option<Duration>,
    /// Each request's timeout.
    #[serde(default = "default_request_timeout", with = "duration")]
    pub timeout: Duration,
    /// Point name -> the quantity its readings carry on this device, where the
    /// placement says more than the profile can: an XY-MD02 in the cold aisle
    /// measures server inlet air (`inlet_temperature_celsius`, which the
    /// cooling signal watches), the same probe in the hot aisle does not.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub quantities: BTreeMap<String, String>,
}

/// Where a device is reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ModbusAddress {
    /// `tcp://host:port` (port default 502): Modbus TCP (MBAP framing).
    Tcp { host: String, port: u16 },
    /// `rtu:///dev/ttyUSB0?baud=9600&parity=N&stop=1&data=8`: RTU on a serial line.
    Rtu(SerialLine),
    /// `rtu+tcp://host:port`: RTU frames through a serial-to-Ethernet converter.
    RtuOverTcp { host: String, port: u16 },
}

/// A serial line's path and framing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SerialLine {
    pub path: String,
    pub baud: u32,
    /// `N`, `E` or `O`.
    pub parity: char,
    pub stop_bits: u8,
    pub data_bits: u8,
}

impl ModbusAddress {
    /// Whether requests travel as RTU frames (a line to drain after a timeout).
    pub fn is_rtu(&self) -> bool {
        !matches!(self, ModbusAddress::Tcp { .. })
    }
}

fn host_port(rest: &str, default_port: Option<u16>) -> Result<(String, u16), String> {
    match default_port {
        Some(port) => Endpoint::parse_with_port(rest, port),
        None => Endpoint::parse_host_port(rest),
    }
    .map_err(|e| e.to_string())
}

impl FromStr for ModbusAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = "expected tcp://host:port, rtu:///dev/tty...?baud=9600&parity=N&stop=1 or rtu+tcp://host:port";
        if let Some(rest) = s.strip_prefix("tcp://") {
            let (host, port) = host_port(rest, Some(502)).map_err(|e| format!("{s}: {e}"))?;
            return Ok(ModbusAddress::Tcp { host, port });
        }
        if let Some(rest) = s.strip_prefix("rtu+tcp://") {
            let (host, port) = host_port(rest, None).map_err(|e| format!("{s}: {e}"))?;
            return Ok(ModbusAddress::RtuOverTcp { host, port });
        }
        let Some(rest) = s.strip_prefix("rtu://") else {
            return Err(format!("`{s}`: {expected}"));
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if !path.starts_with('/') {
            return Err(format!("`{s}`: the serial device must be an absolute path"));
        }
        let mut line = SerialLine {
            path: path.to_owned(),
            baud: 9600,
            parity: 'N',
            stop_bits: 1,
            data_bits: 8,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = || format!("`{s}`: bad {key} `{value}`");
            match key {
                "baud" => line.baud = value.parse().map_err(|_| bad())?,
                "parity" => {
                    line.parity = match value {
                        "N" | "n" | "none" => 'N',
                        "E" | "e" | "even" => 'E',
                        "O" | "o" | "odd" => 'O',
                        _ => return Err(bad()),
                    }
                }
                "stop" => {
                    line.stop_bits = match value {
                        "1" => 1,
                        "2" => 2,
                        _ => return Err(bad()),
                    }
                }
                "data" => {
                    line.data_bits = match value {
                        "7" => 7,
                        "8" => 8,
                        _ => return Err(bad()),
                    }
                }
                _ => {
                    return Err(format!(
                        "`{s}`: unknown option `{key}` (baud, parity, stop, data)"
                    ));
                }
            }
        }
        Ok(ModbusAddress::Rtu(line))
    }
}

impl fmt::Display for ModbusAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModbusAddress::Tcp { host, port } => write!(f, "tcp://{}", join(host, *port)),
            ModbusAddress::RtuOverTcp { host, port } => {
                write!(f, "rtu+tcp://{}", join(host, *port))
            }
            ModbusAddress::Rtu(l) => write!(
                f,
                "rtu://{}?baud={}&parity={}&stop={}&data={}",
                l.path, l.baud, l.parity, l.stop_bits, l.data_bits
            ),
        }
    }
}

impl TryFrom<String> for ModbusAddress {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ModbusAddress> for String {
    fn from(a: ModbusAddress) -> String {
        a.to_string()
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_poll_timeout() -> Duration {
    Duration::from_secs(20)
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(1)
}

/// The problem with a device table, if any: `(key, message)`.
pub fn check(config: &ModbusSourceConfig) -> Result<(), (&'static str, String)> {
    let mut names = std::collections::HashSet::new();
    for d in &config.devices {
        if d.name.is_empty() || d.name.len() > sitewatch_protocol::limits::MAX_DEV_LEN {
            return Err((
                "sources.modbus.devices.name",
                format!("`{}` must be 1-128 characters", d.name),
            ));
        }
        if !names.insert(d.name.as_str()) {
            return Err((
                "sources.modbus.devices.name",
                format!("`{}` is used twice", d.name),
            ));
        }
        if let Some(unit) = d.unit.filter(|u| !(1..=247).contains(u)) {
            return Err((
                "sources.modbus.devices.unit",
                format!("{unit} of `{}` is outside 1..=247", d.name),
            ));
        }
        if d.timeout.is_zero() {
            return Err((
                "sources.modbus.devices.timeout",
                format!("of `{}` must be above zero", d.name),
            ));
        }
        if let Some(q) = d
            .quantities
            .values()
            .find(|q| !sitewatch_protocol::quantity::is_valid(q))
        {
            return Err((
                "sources.modbus.devices.quantities",
                format!("`{q}` of `{}` is not a quantity name (snake_case)", d.name),
            ));
        }
        if d.interval.is_some_and(|i| i < config.interval) {
            return Err((
                "sources.modbus.devices.interval",
                format!("of `{}` is shorter than the source's interval", d.name),
            ));
        }
    }
    Ok(())
}

impl crate::source::Section for ModbusSourceConfig {
    fn enabled(&self) -> bool {
        self.enabled
    }

    fn schedule(&self) -> crate::config::Schedule {
        crate::config::Schedule {
            interval: self.interval,
            timeout: self.timeout,
        }
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        check(self)
    }

    /// A profile that is not a shipped name is a file: it must read and hold
    /// a valid profile.
    fn check_files(&self) -> Result<(), crate::files::FileError> {
        use crate::files::{FileError, FileProblem, readable_file};
        for (i, d) in self.devices.iter().enumerate() {
            if sitewatch_modbus_profile::shipped::load(&d.profile).is_some() {
                continue;
            }
            let key = format!("sources.modbus.devices[{i}].profile");
            let path = std::path::Path::new(&d.profile);
            readable_file(path).map_err(|p| FileError::new(key.clone(), path, p))?;
            super::load_profile(&d.profile).map_err(|e| {
                FileError::new(key.clone(), path, FileProblem::Invalid(e.to_string()))
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_defaults() {
        assert_eq!(
            "tcp://10.0.0.5".parse::<ModbusAddress>().unwrap(),
            ModbusAddress::Tcp {
                host: "10.0.0.5".into(),
                port: 502
            }
        );
        assert_eq!(
            "rtu+tcp://gw:4001".parse::<ModbusAddress>().unwrap(),
            ModbusAddress::RtuOverTcp {
                host: "gw".into(),
                port: 4001
            }
        );
        let rtu: ModbusAddress = "rtu:///dev/ttyUSB0?baud=19200&parity=E&stop=1"
            .parse()
            .unwrap();
        assert_eq!(
            rtu,
            ModbusAddress::Rtu(SerialLine {
                path: "/dev/ttyUSB0".into(),
                baud: 19200,
                parity: 'E',
                stop_bits: 1,
                data_bits: 8,
            })
        );
        assert_eq!(rtu.to_string().parse::<ModbusAddress>().unwrap(), rtu);
        for bad in [
            "udp://x:1",
            "rtu://ttyUSB0",
            "rtu:///dev/x?baud=fast",
            "rtu:///dev/x?flow=on",
            "rtu+tcp://gw",
            "tcp://:502",
        ] {
            assert!(bad.parse::<ModbusAddress>().is_err(), "{bad}");
        }
    }
}
