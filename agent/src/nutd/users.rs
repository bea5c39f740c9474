//! The facade's users, in the subset of upsd.users(5) that `upsmon` needs:
//!
//! ```text
//! [monuser]
//!     password = "a secret"
//!     upsmon primary          # or secondary (master / slave, the old names)
//! ```
//!
//! `actions` and `instcmds` are refused: the facade is read-only but for FSD.

use std::{collections::BTreeMap, path::Path};

use subtle_free::eq;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Watches only.
    Secondary,
    /// May claim the UPS (`PRIMARY`) and raise FSD.
    Primary,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    password: String,
    pub role: Option<Role>,
}

/// The users, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Users {
    users: BTreeMap<String, User>,
}

impl Users {
    pub fn load(path: &Path) -> Result<Users, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
        Users::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Users, String> {
        let mut users = BTreeMap::new();
        let mut current: Option<(String, Option<String>, Option<Role>)> = None;
        let finish = |users: &mut BTreeMap<String, User>,
                      entry: Option<(String, Option<String>, Option<Role>)>|
         -> Result<(), String> {
            if let Some((name, password, role)) = entry {
                let password = password.ok_or_else(|| format!("user {name:?} has no password"))?;
                if users
                    .insert(name.clone(), User { password, role })
                    .is_some()
                {
                    return Err(format!("user {name:?} is defined twice"));
                }
            }
            Ok(())
        };
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |m: String| format!("line {}: {m}", n + 1);
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                finish(&mut users, current.take()).map_err(at)?;
                if name.is_empty() || name.contains(char::is_whitespace) {
                    return Err(at(format!("{name:?} is no user name")));
                }
                current = Some((name.to_owned(), None, None));
                continue;
            }
            let Some(entry) = current.as_mut() else {
                return Err(at("a setting before the first [user]".into()));
            };
            let (key, value) = match line.split_once(['=', ' ', '\t']) {
                Some((k, v)) => (k.trim(), v.trim().trim_start_matches('=').trim()),
                None => (line, ""),
            };
            match key.to_ascii_lowercase().as_str() {
                "password" => {
                    let v = value
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(value);
                    if v.is_empty() {
                        return Err(at("an empty password".into()));
                    }
                    entry.1 = Some(v.to_owned());
                }
                "upsmon" => {
                    entry.2 = Some(match value.to_ascii_lowercase().as_str() {
                        "primary" | "master" => Role::Primary,
                        "secondary" | "slave" => Role::Secondary,
                        other => {
                            return Err(at(format!(
                                "upsmon {other:?}: expected primary or secondary"
                            )));
                        }
                    });
                }
                "actions" | "instcmds" => {
                    return Err(at(format!(
                        "{key}: the facade is read-only (FSD comes with upsmon primary)"
                    )));
                }
                other => return Err(at(format!("unknown setting {other:?}"))),
            }
        }
        finish(&mut users, current.take())?;
        Ok(Users { users })
    }

    /// The user's role when `password` is theirs (compared in constant time);
    /// `None`: no such user or a wrong password.
    pub fn check(&self, name: &str, password: &str) -> Option<Option<Role>> {
        let user = self.users.get(name)?;
        eq(user.password.as_bytes(), password.as_bytes()).then_some(user.role)
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// A constant-time comparison, without another dependency.
mod subtle_free {
    pub fn eq(a: &[u8], b: &[u8]) -> bool {
        let mut diff = a.len() ^ b.len();
        for i in 0..a.len().max(b.len()) {
            let x = a.get(i).copied().unwrap_or(0);
            let y = b.get(i).copied().unwrap_or(0);
            diff |= usize::from(x ^ y);
        }
        diff == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_upsd_users_subset() {
        let u = Users::parse(
            "# comment\n[mon]\n  password = \"s e\"\n  upsmon primary\n[watch]\npassword=x\nupsmon slave\n[ro]\npassword = y\n",
        )
        .unwrap();
        assert_eq!(u.check("mon", "s e"), Some(Some(Role::Primary)));
        assert_eq!(u.check("watch", "x"), Some(Some(Role::Secondary)));
        assert_eq!(u.check("ro", "y"), Some(None));
        assert_eq!(u.check("mon", "wrong"), None);
        assert_eq!(u.check("nobody", "x"), None);
    }

    #[test]
    fn refuses_what_it_does_not_serve() {
        assert!(
            Users::parse("[a]\nupsmon primary\n")
                .unwrap_err()
                .contains("no password")
        );
        assert!(
            Users::parse("[a]\npassword = x\nactions = SET\n")
                .unwrap_err()
                .contains("read-only")
        );
        assert!(
            Users::parse("password = x\n")
                .unwrap_err()
                .contains("before the first")
        );
        assert!(Users::parse("[a]\npassword = x\nupsmon boss\n").is_err());
    }
}
