//! The profiles shipped in `firmware-config/profiles/`, compiled in so that a
//! device can name its profile (`profile = "apc-smart-ups"`) on a gateway that
//! has no profile files installed.

use crate::error::ProfileError;
use crate::profile::Profile;

/// A shipped profile: its name, its path under `firmware-config/profiles/`
/// and its text.
#[derive(Debug, Clone, Copy)]
pub struct Shipped {
    pub name: &'static str,
    pub path: &'static str,
    pub text: &'static str,
}

macro_rules! shipped {
    ($($class:literal / $name:literal),* $(,)?) => {
        /// Every shipped profile.
        pub const SHIPPED: &[Shipped] = &[$(Shipped {
            name: $name,
            path: concat!($class, "/", $name, ".toml"),
            text: include_str!(concat!("../../firmware-config/profiles/", $class, "/", $name, ".toml")),
        }),*];
    };
}

shipped! {
    "ups" / "apc-smart-ups",
    "ups" / "socomec-delphys",
    "ups" / "huawei-ups2000",
    "generator" / "dse-gencomm",
    "cooling" / "vertiv-liebert-icom",
    "environment" / "generic-xy-md02",
    "io" / "generic-di8-leak",
}

/// The shipped profile called `name`, if there is one.
pub fn find(name: &str) -> Option<&'static Shipped> {
    SHIPPED.iter().find(|s| s.name == name)
}

/// Loads and checks the shipped profile called `name`.
pub fn load(name: &str) -> Option<Result<Profile, ProfileError>> {
    find(name).map(|s| Profile::from_toml(s.text, s.path))
}
