//! `[sources.nut]`: upsd servers (Network UPS Tools, RFC 9271) to read.
//!
//! ```toml
//! [sources.nut]
//! interval = "5s"
//!
//! [[sources.nut.servers]]
//! name = "nas"                          # the readings' dev is <ups>@nas
//! address = "10.1.2.20"                 # port 3493 by default
//! username = "monuser"                  # optional, with password_file
//! password_file = "/etc/sitewatch/nut-nas.password"
//! ups = ["ups"]                         # optional: only these UPSes
//! ```

use std::{collections::BTreeSet, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{
    config::{Schedule, default_true, duration, opt_duration},
    endpoint::Endpoint,
};

/// upsd's registered port.
pub const DEFAULT_PORT: u16 = 3493;

/// `[sources.nut]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NutSourceConfig {
    /// Set to false to stop reading upsd servers.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How often the source runs; a server is read when its own interval is due.
    #[serde(default = "default_interval", with = "duration")]
    pub interval: Duration,
    /// How long one poll of every server may take; a server whose read is
    /// not done within its own `timeout` reads `agent_poll_success 0`
    /// (`error="timeout"`) without delaying the others.
    #[serde(default = "default_poll_timeout", with = "duration")]
    pub timeout: Duration,
    #[serde(default)]
    pub servers: Vec<NutServerConfig>,
}

/// `[[sources.nut.servers]]`: one upsd.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NutServerConfig {
    /// The server's name: the readings' `dev` is `<ups>@<name>`.
    pub name: String,
    /// `host[:port]` or `[v6]:port`; the port defaults to 3493.
    pub address: String,
    /// The upsd.users user to log in as (`LOGIN` on the first UPS, so that
    /// wrong credentials show as an error); needs `password_file`. Without
    /// it the server is read anonymously, which upsd allows for reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// A file holding the password (its first line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// STARTTLS before anything else, trusting only this CA (PEM): the
    /// server's certificate must chain to it and name `tls_server_name`.
    /// A server that does not offer TLS is then an error, never read in
    /// the clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    /// The name the server's certificate must hold; default the address's
    /// host (an IP address is checked against the certificate's IP SANs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
    /// Only these UPSes (names as in `LIST UPS`); empty: every UPS it lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ups: Vec<String>,
    /// Poll interval; default the source's.
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub interval: Option<Duration>,
    /// The most one read of this server may take (connect, every list,
    /// logout); default 90 % of the source's `timeout`.
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
}

impl NutServerConfig {
    /// (host, port) of the server.
    pub fn endpoint(&self) -> Result<(String, u16), String> {
        Endpoint::parse_with_port(&self.address, DEFAULT_PORT)
            .map_err(|e| format!("{e}; expected host[:port] or [v6-address]:port"))
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_poll_timeout() -> Duration {
    Duration::from_secs(4)
}

impl crate::source::Section for NutSourceConfig {
    fn enabled(&self) -> bool {
        self.enabled
    }

    fn schedule(&self) -> Schedule {
        Schedule {
            interval: self.interval,
            timeout: self.timeout,
        }
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.timeout.is_zero() || self.timeout > self.interval {
            return Err((
                "sources.nut.timeout",
                "must be above zero and at most sources.nut.interval".into(),
            ));
        }
        let mut names = BTreeSet::new();
        for s in &self.servers {
            if s.name.is_empty() || s.name.len() > 64 || s.name.contains(['/', '@', ' ']) {
                return Err((
                    "sources.nut.servers.name",
                    format!("{:?}: 1-64 characters without '/', '@' or spaces", s.name),
                ));
            }
            if !names.insert(s.name.as_str()) {
                return Err((
                    "sources.nut.servers.name",
                    format!("{:?} is used twice", s.name),
                ));
            }
            s.endpoint()
                .map_err(|e| ("sources.nut.servers.address", format!("{:?}: {e}", s.name)))?;
            if s.username.is_some() != s.password_file.is_some() {
                return Err((
                    "sources.nut.servers.password_file",
                    format!("{:?}: username and password_file go together", s.name),
                ));
            }
            if s.tls_server_name.is_some() && s.tls_ca.is_none() {
                return Err((
                    "sources.nut.servers.tls_server_name",
                    format!("{:?}: needs tls_ca", s.name),
                ));
            }
            if let Some(t) = s.timeout
                && (t.is_zero() || t > self.timeout)
            {
                return Err((
                    "sources.nut.servers.timeout",
                    format!(
                        "{:?}: must be above zero and at most sources.nut.timeout",
                        s.name
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_files(&self) -> Result<(), crate::files::FileError> {
        use crate::files::{FileError, FileProblem, readable_file};
        for (i, s) in self.servers.iter().enumerate() {
            if let Some(ca) = &s.tls_ca {
                let key = format!("sources.nut.servers[{i}].tls_ca");
                readable_file(ca).map_err(|e| FileError::new(key.clone(), ca, e))?;
                crate::tls::client_config(&crate::config::TlsConfig {
                    ca: ca.clone(),
                    cert: None,
                    key: None,
                })
                .map_err(|e| FileError::new(key, ca, FileProblem::Invalid(e.to_string())))?;
            }
            if let Some(p) = &s.password_file {
                let key = format!("sources.nut.servers[{i}].password_file");
                readable_file(p).map_err(|e| FileError::new(key.clone(), p, e))?;
                super::read_secret(p)
                    .map_err(|e| FileError::new(key, p, FileProblem::Invalid(e)))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Section;

    fn parse(text: &str) -> NutSourceConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_and_one_server() {
        let c = parse("[[servers]]\nname = \"nas\"\naddress = \"10.0.0.2\"\n");
        assert_eq!(c.interval, Duration::from_secs(5));
        assert_eq!(c.servers[0].endpoint().unwrap(), ("10.0.0.2".into(), 3493));
        c.validate().unwrap();
    }

    #[test]
    fn refuses_a_username_without_a_password_file_and_twice_a_name() {
        let c = parse("[[servers]]\nname = \"a\"\naddress = \"h\"\nusername = \"u\"\n");
        assert_eq!(
            c.validate().unwrap_err().0,
            "sources.nut.servers.password_file"
        );
        let c = parse(
            "[[servers]]\nname = \"a\"\naddress = \"h\"\n[[servers]]\nname = \"a\"\naddress = \"g\"\n",
        );
        assert_eq!(c.validate().unwrap_err().0, "sources.nut.servers.name");
        let c = parse("timeout = \"10s\"\n");
        assert_eq!(c.validate().unwrap_err().0, "sources.nut.timeout");
    }
}
