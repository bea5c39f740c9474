//! The one grammar for a network address in the agent's configuration:
//! `host`, `host:port`, a bare IPv6 literal, `[v6]` or `[v6]:port`.
//!
//! Every source (net targets, BMCs, Modbus TCP, SNMP agents) and the broker URL
//! parse their `host[:port]` part here, so that an address written one way
//! works everywhere. Callers add what their own field expects (a default port,
//! a scheme) and append their expected form to the error.

use std::{fmt, net::IpAddr};

/// An address split into host and optional port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// A host name or an IP literal (without brackets).
    pub host: String,
    pub port: Option<u16>,
}

/// Why an address does not parse. Its text names the address; callers append
/// the form their field expects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("{0:?} has an unclosed '['")]
    UnclosedBracket(String),
    #[error("{0:?}: {1:?} in brackets is not an IPv6 address")]
    NotIpv6(String, String),
    #[error("{0:?} has junk after ']'")]
    JunkAfterBracket(String),
    #[error("{0:?} has no valid host")]
    Host(String),
    #[error("{0:?} has an invalid port {1:?}")]
    Port(String, String),
    #[error("{0:?} needs a port (host:port)")]
    NoPort(String),
}

impl EndpointError {
    /// A bounded label for tests and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            EndpointError::UnclosedBracket(_)
            | EndpointError::NotIpv6(..)
            | EndpointError::JunkAfterBracket(_) => "brackets",
            EndpointError::Host(_) => "host",
            EndpointError::Port(..) => "port",
            EndpointError::NoPort(_) => "no_port",
        }
    }
}

impl Endpoint {
    /// Parses `host`, `host:port`, `v6`, `[v6]` or `[v6]:port`. Port 0 is refused.
    pub fn parse(address: &str) -> Result<Endpoint, EndpointError> {
        let (host, port) = if let Some(v6) = address.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| EndpointError::UnclosedBracket(address.to_owned()))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(EndpointError::NotIpv6(address.to_owned(), host.to_owned()));
            }
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if after.is_empty() => (host, None),
                None => return Err(EndpointError::JunkAfterBracket(address.to_owned())),
            }
        } else if address.parse::<std::net::Ipv6Addr>().is_ok() {
            // A bare IPv6 literal: its colons are not a port separator.
            (address, None)
        } else {
            match address.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (address, None),
            }
        };
        let bad_char = |c: char| c.is_whitespace() || matches!(c, '/' | '?' | '#' | '@' | ':');
        if host.is_empty() || host.contains(bad_char) && host.parse::<IpAddr>().is_err() {
            return Err(EndpointError::Host(address.to_owned()));
        }
        let port = match port {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| EndpointError::Port(address.to_owned(), p.to_owned()))?,
            ),
        };
        Ok(Endpoint {
            host: host.to_owned(),
            port,
        })
    }

    /// Parses and fills in `default_port` when the address has none.
    pub fn parse_with_port(
        address: &str,
        default_port: u16,
    ) -> Result<(String, u16), EndpointError> {
        let e = Endpoint::parse(address)?;
        Ok((e.host, e.port.unwrap_or(default_port)))
    }

    /// Parses an address that must carry its port.
    pub fn parse_host_port(address: &str) -> Result<(String, u16), EndpointError> {
        let e = Endpoint::parse(address)?;
        match e.port {
            Some(port) => Ok((e.host, port)),
            None => Err(EndpointError::NoPort(address.to_owned())),
        }
    }

    /// The host as an IP address, when it is a literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

/// `host:port`, bracketing an IPv6 host.
pub fn join(host: &str, port: u16) -> String {
    Endpoint {
        host: host.to_owned(),
        port: Some(port),
    }
    .to_string()
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.port, self.host.contains(':')) {
            (Some(port), true) => write!(f, "[{}]:{port}", self.host),
            (Some(port), false) => write!(f, "{}:{port}", self.host),
            (None, _) => f.write_str(&self.host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_into_host_and_port_and_print_back() {
        for (address, host, port) in [
            ("10.0.0.1", "10.0.0.1", None),
            ("10.0.0.1:443", "10.0.0.1", Some(443)),
            ("sw1.bj1", "sw1.bj1", None),
            ("sw1.bj1:22", "sw1.bj1", Some(22)),
            ("fe80::1", "fe80::1", None),
            ("[2001:db8::2]", "2001:db8::2", None),
            ("[::1]:8080", "::1", Some(8080)),
        ] {
            let e = Endpoint::parse(address).unwrap();
            assert_eq!((e.host.as_str(), e.port), (host, port), "{address}");
            assert_eq!(Endpoint::parse(&e.to_string()).unwrap(), e, "{address}");
        }
    }

    #[test]
    fn malformed_addresses_are_refused_with_their_reason() {
        for (bad, kind) in [
            ("", "host"),
            (":22", "host"),
            ("a:b", "port"),
            ("h:0", "port"),
            ("h:70000", "port"),
            ("[::1", "brackets"),
            ("[::1]x", "brackets"),
            ("[host]:1", "brackets"),
            ("a/b", "host"),
            ("a b", "host"),
            ("u@h", "host"),
        ] {
            let e = Endpoint::parse(bad).unwrap_err();
            assert_eq!(e.kind(), kind, "{bad}: {e}");
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
        assert_eq!(
            Endpoint::parse_host_port("gw").unwrap_err().kind(),
            "no_port"
        );
        assert_eq!(
            Endpoint::parse_with_port("[fd00::1]", 623).unwrap(),
            ("fd00::1".to_owned(), 623)
        );
        assert_eq!(join("::1", 161), "[::1]:161");
    }
}
