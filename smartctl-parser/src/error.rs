//! Why an output could not be parsed at all.
//!
//! Only whole-document problems are errors. smartctl's own failures (device open
//! failed, disk asleep, a SMART command failed) are *data*: they parse into a
//! [`Report`](crate::Report) that says so, because smartctl prints JSON for them too.

/// Errors from [`parse_report`](crate::parse_report) and [`parse_scan`](crate::parse_scan).
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The input is not JSON (empty, truncated, or text output without `--json`).
    #[error("smartctl output is not valid JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// Valid JSON, but not an object.
    #[error("smartctl output is JSON but not an object")]
    NotAnObject,
    /// No `smartctl` object: this is not smartctl's JSON output.
    #[error("no `smartctl` section: not smartctl --json output")]
    NoSmartctlSection,
    /// A `json_format_version` whose major number this crate does not know.
    /// Major 0 (smartctl 6.x) and 1 (7.x) are supported; a new major means smartctl
    /// changed the format incompatibly, so guessing would be worse than failing.
    #[error("unsupported smartctl json_format_version {major}.{minor} (supported: 0.x, 1.x)")]
    UnsupportedFormatVersion {
        /// Major version found.
        major: u64,
        /// Minor version found.
        minor: u64,
    },
    /// [`parse_scan`](crate::parse_scan) got an output without a `devices` list
    /// (most likely a device report rather than `--scan` output).
    #[error("no `devices` list: not smartctl --scan --json output")]
    NoDevicesSection,
}

impl ParseError {
    /// A short, bounded label for metrics (`rejected_total{reason=...}`).
    pub fn kind(&self) -> &'static str {
        match self {
            ParseError::NotJson(_) => "not_json",
            ParseError::NotAnObject => "not_object",
            ParseError::NoSmartctlSection => "no_smartctl_section",
            ParseError::UnsupportedFormatVersion { .. } => "unsupported_format_version",
            ParseError::NoDevicesSection => "no_devices_section",
        }
    }
}
