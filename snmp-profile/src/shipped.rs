//! The profiles shipped in `firmware-config/snmp/`, compiled in so that a
//! device names one (`profile = "ups-mib"`) without a file on the gateway.

use crate::{Profile, ProfileError};

/// A shipped profile: its name and its text.
#[derive(Debug, Clone, Copy)]
pub struct Shipped {
    pub name: &'static str,
    pub text: &'static str,
}

macro_rules! shipped {
    ($($name:literal),* $(,)?) => {
        /// Every shipped profile.
        pub const ALL: &[Shipped] = &[$(Shipped {
            name: $name,
            text: include_str!(concat!("../../firmware-config/snmp/", $name, ".toml")),
        }),*];
    };
}

shipped![
    "ups-mib",
    "apc-powernet-ups",
    "apc-rpdu2",
    "apc-environment",
    "eaton-xups",
    "raritan-pdu2",
    "liebert-gp",
    "if-mib",
    "entity-sensor",
];

/// The shipped profile `name`, loaded; `None` when no profile has that name.
pub fn load(name: &str) -> Option<Result<Profile, ProfileError>> {
    ALL.iter()
        .find(|s| s.name == name)
        .map(|s| Profile::from_toml(s.text, &format!("firmware-config/snmp/{}.toml", s.name)))
}
