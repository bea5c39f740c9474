//! `basic_auth_users`: HTTP basic authentication against bcrypt hashes.
//!
//! bcrypt is slow on purpose (cost 10 is about 50-100 ms of one core), so, as
//! the exporter toolkit does, a successful (user, hash, password) check is
//! cached: a Prometheus scraping every 5 s pays for bcrypt once, not at every
//! scrape. The cache holds keyed hashes (HMAC-SHA256 under a key made at start),
//! never a password, is bounded, and only remembers successes, so a guesser
//! cannot fill it. bcrypt runs one check at a time on a blocking thread: a flood
//! of wrong passwords costs at most one core, and waits behind the request
//! timeout. An unknown user costs the same bcrypt as a known one, so the time
//! of a refusal does not tell which user names exist.

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};

use axum::http::HeaderValue;
use base64::Engine;
use ring::hmac;

use super::config::WebConfigError;

/// Cached successful checks at most; the cache starts over when full.
pub const CACHE_ENTRIES: usize = 256;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization` header.
    Missing,
    /// Not `Basic <base64 of user:password>`.
    Malformed,
    UnknownUser,
    WrongPassword,
}

impl Denied {
    pub const ALL: [Denied; 4] = [
        Denied::Missing,
        Denied::Malformed,
        Denied::UnknownUser,
        Denied::WrongPassword,
    ];

    /// A bounded label for the metric.
    pub fn kind(self) -> &'static str {
        match self {
            Denied::Missing => "missing_credentials",
            Denied::Malformed => "malformed_credentials",
            Denied::UnknownUser => "unknown_user",
            Denied::WrongPassword => "wrong_password",
        }
    }

    pub fn index(self) -> usize {
        match self {
            Denied::Missing => 0,
            Denied::Malformed => 1,
            Denied::UnknownUser => 2,
            Denied::WrongPassword => 3,
        }
    }
}

/// The users and the cache of successful checks.
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    key: hmac::Key,
    cache: Mutex<HashSet<[u8; 32]>>,
    /// One bcrypt at a time.
    bcrypt: tokio::sync::Semaphore,
}

impl std::fmt::Debug for BasicAuth {
    // By hand: the hashes and the key stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl BasicAuth {
    /// Checks every hash (a typo fails at start, naming its user).
    pub fn new(users: &BTreeMap<String, String>) -> Result<Self, WebConfigError> {
        for (user, hash) in users {
            if user.contains(':') {
                return Err(WebConfigError::new(
                    format!("basic_auth_users.{user}"),
                    "a user name cannot hold ':' (basic authentication splits on it)",
                ));
            }
            bcrypt::HashParts::from_str(hash).map_err(|e| {
                WebConfigError::new(
                    format!("basic_auth_users.{user}"),
                    format!(
                        "is not a bcrypt hash ({e}); make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"
                    ),
                )
            })?;
        }
        let rng = ring::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).map_err(|_| {
            WebConfigError::new("basic_auth_users", "no randomness for the cache key")
        })?;
        Ok(BasicAuth {
            users: users.clone(),
            key,
            cache: Mutex::new(HashSet::new()),
            bcrypt: tokio::sync::Semaphore::new(1),
        })
    }

    /// Checks an `Authorization` header; the user name when it is accepted.
    pub async fn check(&self, header: Option<&HeaderValue>) -> Result<String, Denied> {
        let header = header.ok_or(Denied::Missing)?;
        let (user, password) = decode(header).ok_or(Denied::Malformed)?;
        let (hash, known) = match self.users.get(&user) {
            Some(hash) => (hash.clone(), true),
            // Same cost as a real check; the answer is no whatever bcrypt says.
            None => match self.users.values().next() {
                Some(hash) => (hash.clone(), false),
                None => return Err(Denied::UnknownUser),
            },
        };
        let cache_key = self.cache_key(&user, &hash, &password);
        if known && self.cached(&cache_key) {
            return Ok(user);
        }
        let ok = {
            let _permit = self
                .bcrypt
                .acquire()
                .await
                .map_err(|_| Denied::WrongPassword)?;
            let password = password.clone();
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false)
        };
        match (known, ok) {
            (true, true) => {
                self.remember(cache_key);
                Ok(user)
            }
            (true, false) => Err(Denied::WrongPassword),
            (false, _) => Err(Denied::UnknownUser),
        }
    }

    fn cache_key(&self, user: &str, hash: &str, password: &str) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.key);
        // Length-prefixed, so that ("ab", "c") and ("a", "bc") differ.
        for part in [user, hash, password] {
            ctx.update(&(part.len() as u64).to_le_bytes());
            ctx.update(part.as_bytes());
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    fn cached(&self, key: &[u8; 32]) -> bool {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(key)
    }

    fn remember(&self, key: [u8; 32]) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key);
    }

    /// Cached successful checks (for tests and the bench).
    pub fn cached_entries(&self) -> usize {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// `Basic <base64(user:password)>` -> (user, password).
fn decode(header: &HeaderValue) -> Option<(String, String)> {
    let text = header.to_str().ok()?;
    let (scheme, credentials) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(credentials.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, password: &str) -> HeaderValue {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {b64}")).unwrap()
    }

    fn auth() -> BasicAuth {
        // Cost 4, the lowest: the logic is under test here, not bcrypt.
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        BasicAuth::new(&BTreeMap::from([("prometheus".to_owned(), hash)])).unwrap()
    }

    #[tokio::test]
    async fn the_right_password_passes_and_is_cached() {
        let a = auth();
        assert_eq!(
            a.check(Some(&header("prometheus", "s3cret"))).await,
            Ok("prometheus".to_owned())
        );
        assert_eq!(a.cached_entries(), 1);
        assert!(a.check(Some(&header("prometheus", "s3cret"))).await.is_ok());
        assert_eq!(a.cached_entries(), 1);
    }

    #[tokio::test]
    async fn refusals_say_why_and_are_not_cached() {
        let a = auth();
        assert_eq!(a.check(None).await, Err(Denied::Missing));
        let bearer = HeaderValue::from_static("Bearer abc");
        assert_eq!(a.check(Some(&bearer)).await, Err(Denied::Malformed));
        let garbage = HeaderValue::from_static("Basic !!!");
        assert_eq!(a.check(Some(&garbage)).await, Err(Denied::Malformed));
        assert_eq!(
            a.check(Some(&header("prometheus", "wrong"))).await,
            Err(Denied::WrongPassword)
        );
        // The right password of another user is still an unknown user.
        assert_eq!(
            a.check(Some(&header("grafana", "s3cret"))).await,
            Err(Denied::UnknownUser)
        );
        assert_eq!(a.cached_entries(), 0);
    }

    #[test]
    fn a_user_name_with_a_colon_is_refused() {
        let hash = bcrypt::hash("x", 4).unwrap();
        let e = BasicAuth::new(&BTreeMap::from([("a:b".to_owned(), hash)])).unwrap_err();
        assert_eq!(e.key, "basic_auth_users.a:b");
    }
}
