//! [`Name`]: the strings of a series (source, device, sensor name, quantity),
//! shared rather than copied.
//!
//! A snapshot holds every fresh series of every host: a million of them at
//! the scale the collector is built for, each named by four strings drawn
//! from a few thousand distinct ones. Owned `String`s made each series four
//! allocations and about 200 bytes of heap; a `Name` is a reference-counted
//! `str` that the collector hands out from its interner, so taking a host
//! again is four counter increments, and the million series share the few
//! thousand strings. It reads as a `str` everywhere (`==` against a `&str`,
//! `Deref`, ordering and hashing by content) and serializes as a plain string.

use std::{borrow::Borrow, fmt, ops::Deref, sync::Arc};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An immutable, cheaply cloned string.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(Arc<str>);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Name {
    fn default() -> Self {
        Name(Arc::from(""))
    }
}

impl Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl From<Arc<str>> for Name {
    fn from(s: Arc<str>) -> Self {
        Name(s)
    }
}

impl From<&Arc<str>> for Name {
    fn from(s: &Arc<str>) -> Self {
        Name(Arc::clone(s))
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        Name(Arc::from(s))
    }
}

impl From<String> for Name {
    fn from(s: String) -> Self {
        Name(Arc::from(s))
    }
}

impl From<&String> for Name {
    fn from(s: &String) -> Self {
        Name(Arc::from(s.as_str()))
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        &*self.0 == other.as_str()
    }
}

impl PartialEq<Name> for str {
    fn eq(&self, other: &Name) -> bool {
        self == &*other.0
    }
}

impl PartialEq<Name> for &str {
    fn eq(&self, other: &Name) -> bool {
        *self == &*other.0
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Name::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_compares_orders_and_serializes_as_its_string() {
        let a = Name::from("inlet");
        assert_eq!(a, "inlet");
        assert_eq!("inlet", a);
        assert_eq!(a, "inlet".to_owned());
        let (a_, b_) = (Name::from("a"), Name::from("b"));
        assert!(a_ < b_);
        assert_eq!(serde_json::to_string(&a).unwrap(), r#""inlet""#);
        let back: Name = serde_json::from_str(r#""inlet""#).unwrap();
        assert_eq!(back, a);
        assert_eq!(format!("{a} {a:?}"), r#"inlet "inlet""#);
    }

    #[test]
    fn clones_share_one_string() {
        let shared: Arc<str> = Arc::from("temperature_celsius");
        let a = Name::from(&shared);
        let b = a.clone();
        assert!(std::ptr::eq(a.as_str(), b.as_str()));
        assert!(std::ptr::eq(a.as_str(), &*shared));
        assert_eq!(Arc::strong_count(&shared), 3);
    }
}
