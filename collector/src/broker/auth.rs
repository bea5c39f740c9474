//! Authentication: who a connection is.
//!
//! - A verified client certificate: its subject CN is the identity (as
//!   mosquitto's `use_identity_as_username`); a user name sent with it is ignored.
//! - A user name and password checked against the password file, in
//!   mosquitto_passwd's format, so that one file serves both brokers:
//!   `user:$7$<iterations>$<salt b64>$<hash b64>`, PBKDF2-HMAC-SHA512 (what
//!   mosquitto 2 writes), or the older `user:$6$<salt b64>$<hash b64>`,
//!   SHA-512(password + salt) (read only). Hashes are compared in constant time,
//!   and an unknown user costs one hash too, so timing does not tell which user
//!   names exist.
//! - The collector's own link: a random secret made at start that never leaves
//!   the process.
//! - Nobody: anonymous, when allowed (see `config.rs`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

/// What mosquitto_passwd uses: 101 iterations, 12 bytes of salt, 64 bytes of
/// hash. More iterations would cost every reconnect storm (10,000 agents after a
/// restart) a PBKDF2 each; agent passwords should be long random strings.
pub const DEFAULT_ITERATIONS: u32 = 101;
const SALT_BYTES: usize = 12;
const HASH_BYTES: usize = 64;

/// The user name of the collector's own connection to its embedded broker.
/// Checked before the password file, so an entry of that name could not be used.
pub const INTERNAL_USER: &str = "$sitewatch-collector";

/// Standard base64, padding optional when reading (mosquitto pads).
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A stored password hash.
#[derive(Clone, PartialEq, Eq)]
pub enum Hash {
    /// `$7$`: PBKDF2-HMAC-SHA512.
    Pbkdf2 {
        iterations: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    /// `$6$`: one SHA-512 of password then salt.
    Sha512 { salt: Vec<u8>, hash: Vec<u8> },
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hashes stay out of logs.
        match self {
            Hash::Pbkdf2 { iterations, .. } => write!(f, "Pbkdf2 {{ iterations: {iterations} }}"),
            Hash::Sha512 { .. } => f.write_str("Sha512"),
        }
    }
}

impl Hash {
    /// Hashes a password with a fresh random salt, as mosquitto_passwd does.
    pub fn new(password: &[u8], iterations: u32) -> Hash {
        let salt: [u8; SALT_BYTES] = rand::random();
        let mut hash = vec![0u8; HASH_BYTES];
        pbkdf2::pbkdf2_hmac::<Sha512>(password, &salt, iterations, &mut hash);
        Hash::Pbkdf2 {
            iterations,
            salt: salt.to_vec(),
            hash,
        }
    }

    /// Whether `password` is the one hashed, in constant time.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            Hash::Pbkdf2 {
                iterations,
                salt,
                hash,
            } => {
                let mut computed = vec![0u8; hash.len()];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, *iterations, &mut computed);
                bool::from(computed.ct_eq(hash))
            }
            Hash::Sha512 { salt, hash } => {
                let mut d = Sha512::new();
                d.update(password);
                d.update(salt);
                let computed = d.finalize();
                bool::from(computed.as_slice().ct_eq(hash))
            }
        }
    }

    /// Parses the part after `user:`.
    pub fn parse(text: &str) -> Result<Hash, String> {
        let fields: Vec<&str> = text.split('$').collect();
        let decode = |what: &str, s: &str| {
            B64.decode(s)
                .map_err(|e| format!("the {what} is not base64 ({e})"))
        };
        match fields.as_slice() {
            ["", "7", iterations, salt, hash] => {
                let iterations: u32 =
                    iterations.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        format!("iteration count {iterations:?} is not a number above 0")
                    })?;
                let salt = decode("salt", salt)?;
                let hash = decode("hash", hash)?;
                if salt.is_empty() || hash.is_empty() {
                    return Err("empty salt or hash".into());
                }
                Ok(Hash::Pbkdf2 {
                    iterations,
                    salt,
                    hash,
                })
            }
            ["", "6", salt, hash] => {
                let salt = decode("salt", salt)?;
                let hash = decode("hash", hash)?;
                if hash.len() != HASH_BYTES {
                    return Err(format!(
                        "a $6$ hash is {HASH_BYTES} bytes, not {}",
                        hash.len()
                    ));
                }
                Ok(Hash::Sha512 { salt, hash })
            }
            _ => Err(
                "expected $7$<iterations>$<salt>$<hash> (mosquitto_passwd) or $6$<salt>$<hash>"
                    .into(),
            ),
        }
    }

    /// The stored form (after `user:`).
    pub fn encode(&self) -> String {
        match self {
            Hash::Pbkdf2 {
                iterations,
                salt,
                hash,
            } => format!("$7${iterations}${}${}", B64.encode(salt), B64.encode(hash)),
            Hash::Sha512 { salt, hash } => format!("$6${}${}", B64.encode(salt), B64.encode(hash)),
        }
    }
}

/// A password file: users in file order (kept when it is rewritten).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordFile {
    entries: Vec<(String, Hash)>,
}

/// A line of a password file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct PasswordFileError {
    pub line: usize,
    pub message: String,
}

/// Why a user name cannot go in a password file.
pub fn check_user_name(user: &str) -> Result<(), String> {
    if user.is_empty() {
        return Err("the user name is empty".into());
    }
    if user.contains([':', '\n', '\r', '\0']) {
        return Err("a user name cannot contain ':', a line break or U+0000".into());
    }
    if user.starts_with('#') {
        return Err("a user name cannot start with '#' (a comment in the file)".into());
    }
    if user.len() > 65_535 {
        return Err("a user name is at most 65535 bytes (MQTT)".into());
    }
    Ok(())
}

impl PasswordFile {
    /// Parses the file's text. Blank lines and lines starting with `#` are skipped.
    pub fn parse(text: &str) -> Result<PasswordFile, PasswordFileError> {
        let mut entries: Vec<(String, Hash)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.trim_end_matches('\r');
            if l.trim().is_empty() || l.starts_with('#') {
                continue;
            }
            let err = |message: String| PasswordFileError { line, message };
            // The user name is everything before the last ':' (hashes hold none).
            let (user, hash) = l
                .rsplit_once(':')
                .ok_or_else(|| err("expected user:hash".into()))?;
            check_user_name(user).map_err(err)?;
            let hash = Hash::parse(hash).map_err(|m| err(format!("user {user:?}: {m}")))?;
            if entries.iter().any(|(u, _)| u == user) {
                return Err(err(format!("user {user:?} appears twice")));
            }
            entries.push((user.to_owned(), hash));
        }
        Ok(PasswordFile { entries })
    }

    /// The file's text, one `user:hash` line each.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (user, hash) in &self.entries {
            let _ = writeln!(out, "{user}:{}", hash.encode());
        }
        out
    }

    /// Adds a user or replaces its hash.
    pub fn set(&mut self, user: &str, hash: Hash) {
        match self.entries.iter_mut().find(|(u, _)| u == user) {
            Some((_, h)) => *h = hash,
            None => self.entries.push((user.to_owned(), hash)),
        }
    }

    /// Removes a user; whether it was there.
    pub fn remove(&mut self, user: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(u, _)| u != user);
        self.entries.len() != before
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `user` exists and `password` is its password. An unknown user is
    /// hashed against a dummy entry, so both answers take the same time.
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        match self.entries.iter().find(|(u, _)| u == user) {
            Some((_, hash)) => hash.verify(password),
            None => {
                let dummy = Hash::Pbkdf2 {
                    iterations: DEFAULT_ITERATIONS,
                    salt: vec![0; SALT_BYTES],
                    hash: vec![0; HASH_BYTES],
                };
                let _ = dummy.verify(password);
                false
            }
        }
    }
}

/// Who a connection is, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// No credentials, where anonymous access is allowed.
    Anonymous,
    /// The collector's in-process consumer.
    Internal,
    /// A user of the password file.
    User(String),
    /// A verified client certificate's subject CN.
    Certificate(String),
}

impl Identity {
    /// The name roles are looked up by; `None` for anonymous and internal.
    pub fn name(&self) -> Option<&str> {
        match self {
            Identity::User(n) | Identity::Certificate(n) => Some(n),
            Identity::Anonymous | Identity::Internal => None,
        }
    }
}

/// Why CONNECT's credentials are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown user, wrong password, or a user name where none can be checked.
    BadCredentials,
    /// No credentials where anonymous access is not allowed.
    NoCredentials,
}

/// Checks credentials. Shared by every listener; the password file can be
/// re-read (SIGHUP) while it runs.
#[derive(Debug)]
pub struct Authenticator {
    password_file: Option<PathBuf>,
    passwords: RwLock<Arc<PasswordFile>>,
    allow_anonymous: bool,
    internal_secret: String,
}

impl Authenticator {
    /// Loads the password file, if any.
    pub fn new(password_file: Option<&Path>, allow_anonymous: bool) -> Result<Self, crate::Error> {
        let passwords = match password_file {
            Some(p) => load(p)?,
            None => PasswordFile::default(),
        };
        let secret: [u8; 32] = rand::random();
        Ok(Authenticator {
            password_file: password_file.map(Path::to_owned),
            passwords: RwLock::new(Arc::new(passwords)),
            allow_anonymous,
            internal_secret: secret.iter().map(|b| format!("{b:02x}")).collect(),
        })
    }

    /// The collector's own credentials for this broker.
    pub fn internal_credentials(&self) -> (String, String) {
        (INTERNAL_USER.to_owned(), self.internal_secret.clone())
    }

    pub fn allows_anonymous(&self) -> bool {
        self.allow_anonymous
    }

    /// Re-reads the password file; on error the previous one stays in use.
    pub fn reload(&self) -> Result<usize, crate::Error> {
        let Some(path) = &self.password_file else {
            return Ok(0);
        };
        let fresh = load(path)?;
        let n = fresh.len();
        *self
            .passwords
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(fresh);
        Ok(n)
    }

    /// Who presents these credentials. `certificate` is the verified client
    /// certificate's CN, when the TLS listener got one.
    pub fn authenticate(
        &self,
        username: Option<&str>,
        password: Option<&[u8]>,
        certificate: Option<&str>,
    ) -> Result<Identity, Refusal> {
        if let Some(cn) = certificate {
            return Ok(Identity::Certificate(cn.to_owned()));
        }
        let password = password.unwrap_or_default();
        match username {
            Some(INTERNAL_USER) => {
                if bool::from(password.ct_eq(self.internal_secret.as_bytes())) {
                    Ok(Identity::Internal)
                } else {
                    Err(Refusal::BadCredentials)
                }
            }
            Some(user) if self.password_file.is_some() => {
                let passwords = Arc::clone(
                    &self
                        .passwords
                        .read()
                        .unwrap_or_else(PoisonError::into_inner),
                );
                if passwords.verify(user, password) {
                    Ok(Identity::User(user.to_owned()))
                } else {
                    Err(Refusal::BadCredentials)
                }
            }
            // A name with nothing to check it against is only a label.
            Some(_) | None if self.allow_anonymous => Ok(Identity::Anonymous),
            Some(_) => Err(Refusal::BadCredentials),
            None => Err(Refusal::NoCredentials),
        }
    }
}

/// Reads and parses a password file; errors name the file and the line.
pub fn load(path: &Path) -> Result<PasswordFile, crate::Error> {
    let text = std::fs::read_to_string(path).map_err(|source| crate::Error::FileRead {
        path: path.to_owned(),
        what: "the password file (embedded_broker.auth.password_file)",
        source,
    })?;
    PasswordFile::parse(&text).map_err(|e| crate::Error::ConfigInvalid {
        origin: path.display().to_string(),
        key: "embedded_broker.auth.password_file".into(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made by Debian's `mosquitto_passwd -c -b pw bj1/web-01 secret` (2.0.11).
    const MOSQUITTO_LINE: &str = "bj1/web-01:$7$101$tzVEGQny0NeXWAXs$gzGb+NpdgzZUw5IUTP9zc8kDQiv7eZqlB/Jt60FbnPco01CLUiRSenldNVF1fN44CEqhL/mP8FWNUDclZVFImg==";

    #[test]
    fn a_mosquitto_passwd_hash_verifies_its_password_only() {
        let file = PasswordFile::parse(MOSQUITTO_LINE).unwrap();
        assert!(file.verify("bj1/web-01", b"secret"));
        assert!(!file.verify("bj1/web-01", b"Secret"));
        assert!(!file.verify("bj1/web-01", b""));
        assert!(!file.verify("bj1/web-02", b"secret"));
        // And it is written back byte for byte.
        assert_eq!(file.render(), format!("{MOSQUITTO_LINE}\n"));
    }

    #[test]
    fn new_hashes_are_mosquittos_format_and_verify() {
        let h = Hash::new(b"pa:ss$word", DEFAULT_ITERATIONS);
        let text = h.encode();
        assert!(text.starts_with("$7$101$"), "{text}");
        let fields: Vec<&str> = text.split('$').collect();
        assert_eq!(fields[3].len(), 16, "12 bytes of salt");
        assert_eq!(fields[4].len(), 88, "64 bytes of hash");
        let parsed = Hash::parse(&text).unwrap();
        assert!(parsed.verify(b"pa:ss$word"));
        assert!(!parsed.verify(b"pa:ss$wore"));
        // Salted: the same password hashes differently twice.
        assert_ne!(Hash::new(b"x", 101).encode(), Hash::new(b"x", 101).encode());
    }

    #[test]
    fn sha512_hashes_of_older_files_verify() {
        let salt = b"0123456789ab".to_vec();
        let mut d = Sha512::new();
        d.update(b"hunter2");
        d.update(&salt);
        let hash = d.finalize().to_vec();
        let line = format!("old:$6${}${}", B64.encode(&salt), B64.encode(&hash));
        let file = PasswordFile::parse(&line).unwrap();
        assert!(file.verify("old", b"hunter2"));
        assert!(!file.verify("old", b"hunter3"));
    }

    #[test]
    fn bad_lines_are_named_by_number() {
        for (text, line, needle) in [
            ("a:$7$101$c2FsdA==$aGFzaA==\nnocolon\n", 2, "user:hash"),
            ("a:$5$x$y", 1, "expected $7$"),
            ("a:$7$zero$c2FsdA==$aGFzaA==", 1, "iteration"),
            ("a:$7$101$!!!$aGFzaA==", 1, "salt is not base64"),
            (
                "a:$7$101$c2FsdA==$aGFzaA==\na:$7$101$c2FsdA==$aGFzaA==",
                2,
                "twice",
            ),
            (":$7$101$c2FsdA==$aGFzaA==", 1, "empty"),
        ] {
            let e = PasswordFile::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.message.contains(needle), "{text}: {e}");
        }
        let ok = PasswordFile::parse("# comment\n\n  \nu:$7$101$c2FsdA==$aGFzaA==\r\n").unwrap();
        assert_eq!(ok.len(), 1);
    }

    #[test]
    fn set_replaces_and_remove_deletes_keeping_order() {
        let mut f = PasswordFile::default();
        f.set("a", Hash::new(b"1", 1));
        f.set("b", Hash::new(b"2", 1));
        f.set("a", Hash::new(b"3", 1));
        assert!(f.verify("a", b"3") && !f.verify("a", b"1"));
        assert!(f.render().starts_with("a:"));
        assert!(f.remove("a"));
        assert!(!f.remove("a"));
        assert_eq!(f.len(), 1);
        assert!(check_user_name("a:b").is_err());
        assert!(check_user_name("#x").is_err());
        assert!(check_user_name("bj1/web-01").is_ok());
    }

    #[test]
    fn authentication_order_certificate_internal_file_anonymous() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, format!("{MOSQUITTO_LINE}\n")).unwrap();
        let auth = Authenticator::new(Some(&path), false).unwrap();
        assert_eq!(
            auth.authenticate(Some("bj1/web-01"), Some(b"secret"), None),
            Ok(Identity::User("bj1/web-01".into()))
        );
        assert_eq!(
            auth.authenticate(Some("bj1/web-01"), Some(b"nope"), None),
            Err(Refusal::BadCredentials)
        );
        assert_eq!(
            auth.authenticate(None, None, None),
            Err(Refusal::NoCredentials)
        );
        // The certificate wins over whatever user name comes with it.
        assert_eq!(
            auth.authenticate(Some("x"), Some(b"y"), Some("bj1/db-01")),
            Ok(Identity::Certificate("bj1/db-01".into()))
        );
        let (user, secret) = auth.internal_credentials();
        assert_eq!(
            auth.authenticate(Some(&user), Some(secret.as_bytes()), None),
            Ok(Identity::Internal)
        );
        assert_eq!(
            auth.authenticate(Some(&user), Some(b"guess"), None),
            Err(Refusal::BadCredentials)
        );

        let open = Authenticator::new(None, true).unwrap();
        assert_eq!(open.authenticate(None, None, None), Ok(Identity::Anonymous));
        assert_eq!(
            open.authenticate(Some("anyone"), Some(b"x"), None),
            Ok(Identity::Anonymous)
        );
        let closed = Authenticator::new(None, false).unwrap();
        assert_eq!(
            closed.authenticate(Some("anyone"), Some(b"x"), None),
            Err(Refusal::BadCredentials)
        );
    }

    #[test]
    fn reload_picks_up_a_new_file_and_keeps_the_old_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, format!("{MOSQUITTO_LINE}\n")).unwrap();
        let auth = Authenticator::new(Some(&path), false).unwrap();
        let mut f = PasswordFile::default();
        f.set("bj1/web-02", Hash::new(b"two", 101));
        std::fs::write(&path, f.render()).unwrap();
        assert_eq!(auth.reload().unwrap(), 1);
        assert!(
            auth.authenticate(Some("bj1/web-02"), Some(b"two"), None)
                .is_ok()
        );
        assert!(
            auth.authenticate(Some("bj1/web-01"), Some(b"secret"), None)
                .is_err()
        );
        std::fs::write(&path, "garbage\n").unwrap();
        assert!(auth.reload().is_err());
        assert!(
            auth.authenticate(Some("bj1/web-02"), Some(b"two"), None)
                .is_ok()
        );
    }
}
