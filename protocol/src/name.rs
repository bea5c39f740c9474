//! Site and host names: the identity in every topic.
//!
//! `<site>` and `<host>` are 1-64 characters of `[a-z0-9_.-]`, never starting with
//! `_` (reserved for the collector's own topics such as `_signals`). The newtypes
//! below can only be built through validation, so holding one is proof of a valid
//! name. They wrap `Arc<str>` because the collector clones them into every series.

use std::{fmt, str::FromStr, sync::Arc};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::limits::MAX_SITE_HOST_LEN;

/// Why a string is not a valid site or host name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("is empty")]
    Empty,
    #[error("is {len} characters long, at most {max} allowed")]
    TooLong { len: usize, max: usize },
    #[error("starts with '_', which is reserved for the collector")]
    Reserved,
    #[error("contains {found:?}; only a-z, 0-9, '_', '.' and '-' are allowed")]
    InvalidChar { found: char },
}

impl NameError {
    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            NameError::Empty => "empty",
            NameError::TooLong { .. } => "too_long",
            NameError::Reserved => "reserved",
            NameError::InvalidChar { .. } => "invalid_char",
        }
    }
}

/// Checks a site or host name against the v1 rules.
pub fn validate_name(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s.len() > MAX_SITE_HOST_LEN {
        return Err(NameError::TooLong {
            len: s.chars().count(),
            max: MAX_SITE_HOST_LEN,
        });
    }
    if s.starts_with('_') {
        return Err(NameError::Reserved);
    }
    if let Some(found) = s
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '_' | '.' | '-'))
    {
        return Err(NameError::InvalidChar { found });
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $ty(Arc<str>);

        impl $ty {
            /// Validates and wraps a name.
            pub fn new(s: &str) -> Result<Self, NameError> {
                validate_name(s)?;
                Ok(Self(Arc::from(s)))
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = NameError;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(&s)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), &*self.0)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
                Self::new(&s).map_err(|e| {
                    serde::de::Error::custom(format_args!("invalid name {s:?}: {e}"))
                })
            }
        }
    };
}

name_type!(
    /// A datacenter or machine-room name, e.g. `bj1`.
    SiteName
);
name_type!(
    /// A host name within a site, e.g. `web-01`.
    HostName
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_lowercase_digits_dot_dash_underscore() {
        for ok in ["bj1", "web-01", "a", "db_2.rack-3", &"x".repeat(64)] {
            assert!(SiteName::new(ok).is_ok(), "{ok}");
            assert!(HostName::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_each_invalid_form_with_its_reason() {
        assert_eq!(SiteName::new(""), Err(NameError::Empty));
        assert_eq!(
            SiteName::new(&"x".repeat(65)),
            Err(NameError::TooLong { len: 65, max: 64 })
        );
        assert_eq!(HostName::new("_signals"), Err(NameError::Reserved));
        assert_eq!(
            HostName::new("Web01"),
            Err(NameError::InvalidChar { found: 'W' })
        );
        assert_eq!(
            HostName::new("a/b"),
            Err(NameError::InvalidChar { found: '/' })
        );
        assert_eq!(
            HostName::new("a+"),
            Err(NameError::InvalidChar { found: '+' })
        );
    }

    #[test]
    fn deserializing_an_invalid_name_fails() {
        assert!(serde_json::from_str::<SiteName>("\"BJ1\"").is_err());
        let ok: SiteName = serde_json::from_str("\"bj1\"").unwrap();
        assert_eq!(ok.as_str(), "bj1");
    }
}
