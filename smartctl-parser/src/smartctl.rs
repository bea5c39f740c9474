//! The envelope every smartctl JSON output shares: `json_format_version` and the
//! `smartctl` section (version, argv, messages, exit status).

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::de::{self, value_to_u64};
use crate::error::ParseError;
use crate::exit_status::ExitStatus;

/// `json_format_version`: `[0, 1]` from smartctl 6.x, `[1, 0]` from 7.x.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FormatVersion {
    /// Major number; a change means an incompatible format.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
}

/// The `smartctl` section: what ran and how it ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Smartctl {
    /// smartctl's own version, e.g. `[7, 3]`.
    #[serde(deserialize_with = "version_opt")]
    pub version: Option<SmartctlVersion>,
    /// Subversion revision of the build, e.g. `"5338"`.
    #[serde(deserialize_with = "de::string_opt")]
    pub svn_revision: Option<String>,
    /// e.g. `"x86_64-linux-6.1.0"`.
    #[serde(deserialize_with = "de::string_opt")]
    pub platform_info: Option<String>,
    /// The command line smartctl was run with.
    #[serde(deserialize_with = "de::lenient_vec")]
    pub argv: Vec<String>,
    /// Messages smartctl would have printed as text (errors, warnings, notes).
    #[serde(deserialize_with = "de::lenient_vec")]
    pub messages: Vec<Message>,
    /// The exit status; `None` when missing or outside `0..=255`.
    #[serde(deserialize_with = "exit_status_opt")]
    pub exit_status: Option<ExitStatus>,
}

/// smartctl's version, `[major, minor]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SmartctlVersion {
    /// e.g. 7.
    pub major: u64,
    /// e.g. 3.
    pub minor: u64,
}

/// One entry of `smartctl.messages[]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Message {
    /// The text, e.g. `"Device is in STANDBY mode, exit(2)"`.
    pub string: String,
    /// How serious smartctl thinks it is.
    #[serde(default)]
    pub severity: MessageSeverity,
}

/// `smartctl.messages[].severity`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum MessageSeverity {
    /// `"information"` (smartctl's default for notes).
    #[default]
    Information,
    /// `"warning"`.
    Warning,
    /// `"error"`.
    Error,
    /// Anything else, kept as written.
    Other(String),
}

impl<'de> Deserialize<'de> for MessageSeverity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(
            match de::value_to_string(&Value::deserialize(d)?).as_deref() {
                Some("information") | None => MessageSeverity::Information,
                Some("warning") => MessageSeverity::Warning,
                Some("error") => MessageSeverity::Error,
                Some(other) => MessageSeverity::Other(other.to_owned()),
            },
        )
    }
}

impl Smartctl {
    /// Messages of severity `error`.
    pub fn errors(&self) -> impl Iterator<Item = &Message> {
        self.messages
            .iter()
            .filter(|m| m.severity == MessageSeverity::Error)
    }

    /// The power mode named in a "Device is in STANDBY mode, exit(2)" message, if
    /// `--nocheck` made smartctl skip the device because it was asleep.
    ///
    /// smartctl prints that message (as an `information` message in JSON) and exits
    /// with bit 1 set, or with the status given by `--nocheck=standby,N`, so the
    /// message, not the status, is what identifies a skip. Modes seen: `SLEEP`,
    /// `STANDBY`, `STANDBY_Y`, `IDLE`, `IDLE_A`..`IDLE_C`, and `STANDBY (OS)` when
    /// the operating system already knew the disk was spun down; older releases
    /// printed `STANDBY BY COMMAND` and similar for SCSI.
    pub fn low_power_mode(&self) -> Option<&str> {
        self.messages.iter().find_map(|m| {
            let at = m.string.find("Device is in ")?;
            let rest = &m.string[at + "Device is in ".len()..];
            let mode = rest.split(" mode").next()?.trim();
            (!mode.is_empty() && rest.contains(" mode")).then_some(mode)
        })
    }
}

fn version_opt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<SmartctlVersion>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(parts) => match (parts.first().and_then(value_to_u64), parts.get(1)) {
            (Some(major), minor) => Some(SmartctlVersion {
                major,
                minor: minor.and_then(value_to_u64).unwrap_or(0),
            }),
            _ => None,
        },
        _ => None,
    })
}

fn exit_status_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ExitStatus>, D::Error> {
    Ok(value_to_u64(&Value::deserialize(d)?)
        .and_then(|u| u8::try_from(u).ok())
        .map(ExitStatus::from_bits))
}

/// A checked smartctl JSON document: the top-level object plus its envelope.
pub(crate) struct Envelope {
    pub map: Map<String, Value>,
    pub format_version: Option<FormatVersion>,
    pub smartctl: Smartctl,
}

/// Parses the text into a JSON object and checks the envelope: an object, a
/// known `json_format_version` (when present), and a `smartctl` section.
///
/// `KEY_s` string mirrors are folded into `KEY` here, once, for every section.
pub(crate) fn parse_envelope(text: &str) -> Result<Envelope, ParseError> {
    let mut value: Value = serde_json::from_str(text).map_err(ParseError::NotJson)?;
    de::fold_string_mirrors(&mut value);
    let Value::Object(map) = value else {
        return Err(ParseError::NotAnObject);
    };

    // Missing is tolerated (smartctl always prints it, but a hand-trimmed capture
    // may not); present and unknown is not.
    let format_version = match map.get("json_format_version") {
        Some(Value::Array(parts)) => {
            let major = parts.first().and_then(value_to_u64).unwrap_or(0);
            let minor = parts.get(1).and_then(value_to_u64).unwrap_or(0);
            if major > 1 {
                return Err(ParseError::UnsupportedFormatVersion { major, minor });
            }
            Some(FormatVersion { major, minor })
        }
        _ => None,
    };

    let smartctl = match map.get("smartctl") {
        Some(section @ Value::Object(_)) => {
            Smartctl::deserialize(section).map_err(|_| ParseError::NoSmartctlSection)?
        }
        _ => return Err(ParseError::NoSmartctlSection),
    };

    Ok(Envelope {
        map,
        format_version,
        smartctl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_messages(texts: &[&str]) -> Smartctl {
        Smartctl {
            messages: texts
                .iter()
                .map(|s| Message {
                    string: (*s).to_owned(),
                    severity: MessageSeverity::Information,
                })
                .collect(),
            ..Smartctl::default()
        }
    }

    #[test]
    fn standby_message_names_the_power_mode() {
        let s = with_messages(&["Device is in STANDBY mode, exit(2)"]);
        assert_eq!(s.low_power_mode(), Some("STANDBY"));
    }

    #[test]
    fn os_standby_message_with_device_prefix_is_recognised() {
        let s = with_messages(&["/dev/sda: Device is in STANDBY (OS) mode, exit(2)"]);
        assert_eq!(s.low_power_mode(), Some("STANDBY (OS)"));
    }

    #[test]
    fn other_messages_are_not_low_power() {
        let s = with_messages(&["Warning: This result is based on an Attribute check."]);
        assert_eq!(s.low_power_mode(), None);
    }

    #[test]
    fn format_version_2_is_rejected() {
        let err = parse_envelope(r#"{"json_format_version":[2,0],"smartctl":{}}"#)
            .err()
            .map(|e| e.kind());
        assert_eq!(err, Some("unsupported_format_version"));
    }
}
