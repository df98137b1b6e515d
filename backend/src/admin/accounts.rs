//! Console accounts and sessions: Argon2id password hashes, names and passwords
//! checked, sessions by cookie (only the cookie's SHA-256 is stored) with idle expiry
//! and revocation, the per-session CSRF token, login throttling, and the one-time
//! sign-in link of a first start.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use rand::RngCore as _;
use sha2::Digest as _;
use sothebais_kit::access::{Claims, Role, Session, SessionStore};
use sothebais_kit::clock::SharedClock;
use sothebais_kit::http::Failure;

use super::throttle::LoginThrottle;
use crate::storage::{Account, SessionRow, Storage, StorageError};

/// The shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 10;
/// Password checks run at once at most; more wait their turn.
const PARALLEL_CHECKS: usize = 4;
/// A session seen again within this long is not written back (one write a minute
/// at most per session).
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// Why an account could not be made or changed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("a user name is 1 to 32 characters: lower-case letters, digits, '.', '_' or '-'")]
    BadName,
    #[error("a password has at least {MIN_PASSWORD_LEN} characters")]
    ShortPassword,
    #[error("a console account is admin, operator or viewer")]
    BadRole,
    #[error("there is already a user {0:?}")]
    Taken(String),
    #[error("there is no user {0:?}")]
    NoSuchUser(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub fn check_name(name: &str) -> Result<(), AccountError> {
    let valid = !name.is_empty()
        && name.len() <= 32
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if valid { Ok(()) } else { Err(AccountError::BadName) }
}

pub fn check_password(password: &str) -> Result<(), AccountError> {
    if password.chars().count() >= MIN_PASSWORD_LEN { Ok(()) } else { Err(AccountError::ShortPassword) }
}

/// The roles a console account may have (a bidder signs in on X, not here).
pub fn console_role(role: Role) -> Result<Role, AccountError> {
    match role {
        Role::Admin | Role::Operator | Role::Viewer => Ok(role),
        Role::Bidder => Err(AccountError::BadRole),
    }
}

/// An Argon2id PHC string for `password` (the crate's default cost: 19 MiB, 2 passes).
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .unwrap_or_default()
}

/// Whether `password` matches the PHC string `hash`; a hash that cannot be read
/// matches nothing.
pub fn verify_password(hash: &str, password: &str) -> bool {
    Argon2::default().verify_password(password.as_bytes(), hash).is_ok()
}

/// A random secret as 64 hex digits.
fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn sha256_hex(text: &str) -> String {
    sha2::Sha256::digest(text.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A session just made: the cookie's value and the CSRF token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub cookie: String,
    pub csrf: String,
}

/// Accounts, sessions and the login throttle of this process.
pub struct Accounts {
    storage: Arc<dyn Storage>,
    clock: SharedClock,
    idle: Duration,
    throttle: Mutex<LoginThrottle>,
    /// Password checks running at once, at most.
    checking: tokio::sync::Semaphore,
    /// A hash to check against when the user does not exist, so an unknown name
    /// costs the same time as a wrong password.
    decoy_hash: String,
    /// The SHA-256 of the first start's one-time sign-in token, until used.
    first_login: Mutex<Option<String>>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Accounts").field("idle", &self.idle).finish_non_exhaustive()
    }
}

/// How a login attempt ended.
#[derive(Debug)]
pub enum Login {
    SignedIn {
        account: Account,
        session: NewSession,
    },
    /// Unknown user or wrong password: the caller is never told which.
    Refused,
    /// Too many failures: try again after this long.
    Throttled(Duration),
}

impl Accounts {
    pub fn new(storage: Arc<dyn Storage>, clock: SharedClock, idle: Duration) -> Accounts {
        Accounts {
            storage,
            clock,
            idle,
            throttle: Mutex::new(LoginThrottle::default()),
            checking: tokio::sync::Semaphore::new(PARALLEL_CHECKS),
            decoy_hash: hash_password(&random_hex()),
            first_login: Mutex::new(None),
        }
    }

    pub fn idle(&self) -> Duration {
        self.idle
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Adds an account; the password is hashed here.
    pub async fn add(&self, username: &str, role: Role, password: &str) -> Result<Account, AccountError> {
        check_name(username)?;
        check_password(password)?;
        let role = console_role(role)?;
        let password = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await.unwrap_or_default();
        let account = Account {
            username: username.to_owned(),
            role: role.to_string(),
            password_hash: hash,
            created_at: self.now(),
        };
        if self.storage.add_account(&account).await? {
            Ok(account)
        } else {
            Err(AccountError::Taken(username.to_owned()))
        }
    }

    /// Removes an account; its sessions end with it.
    pub async fn remove(&self, username: &str) -> Result<(), AccountError> {
        if self.storage.remove_account(username, self.now()).await? {
            Ok(())
        } else {
            Err(AccountError::NoSuchUser(username.to_owned()))
        }
    }

    /// Sets a new password and ends the account's sessions but the one of `keep`
    /// (the cookie of the session that set it).
    pub async fn set_password(
        &self,
        username: &str,
        password: &str,
        keep: Option<&str>,
    ) -> Result<(), AccountError> {
        check_password(password)?;
        let password = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await.unwrap_or_default();
        if !self.storage.set_password(username, &hash).await? {
            return Err(AccountError::NoSuchUser(username.to_owned()));
        }
        let keep = keep.map(sha256_hex);
        self.storage.revoke_sessions_of(username, keep.as_deref(), self.now()).await?;
        Ok(())
    }

    /// Checks a login, throttled per client address and per account.
    pub async fn login(&self, address: &str, username: &str, password: &str) -> Result<Login, StorageError> {
        let keys = vec![format!("addr:{address}"), format!("user:{}", username.to_ascii_lowercase())];
        if let Err(wait) = self.throttle.lock().map_err(|_| poisoned())?.admit(&keys, self.now()) {
            return Ok(Login::Throttled(wait));
        }
        // Argon2 takes 19 MiB and a core for a moment: a few checks at a time.
        let _permit = self
            .checking
            .acquire()
            .await
            .map_err(|_| StorageError::Database("the password checks were closed".into()))?;
        let account = self.storage.account(username).await?;
        let hash =
            account.as_ref().map_or_else(|| self.decoy_hash.clone(), |account| account.password_hash.clone());
        let typed = password.to_owned();
        let matches =
            tokio::task::spawn_blocking(move || verify_password(&hash, &typed)).await.unwrap_or(false);
        match account.filter(|_| matches) {
            Some(account) => {
                self.throttle.lock().map_err(|_| poisoned())?.succeeded(&keys);
                let role = account.role.parse().unwrap_or(Role::Viewer);
                let session = self.open_session(&account.username, role).await?;
                Ok(Login::SignedIn { account, session })
            }
            // Counted as a failure when it was let in.
            None => Ok(Login::Refused),
        }
    }

    async fn open_session(&self, username: &str, role: Role) -> Result<NewSession, StorageError> {
        let session = NewSession { cookie: random_hex(), csrf: random_hex() };
        let now = self.now();
        self.storage
            .add_session(&SessionRow {
                id_hash: sha256_hex(&session.cookie),
                username: username.to_owned(),
                role: role.to_string(),
                csrf: session.csrf.clone(),
                created_at: now,
                last_seen_at: now,
                revoked_at: None,
            })
            .await?;
        Ok(session)
    }

    /// Ends the session of a cookie.
    pub async fn logout(&self, cookie: &str) -> Result<bool, StorageError> {
        self.storage.revoke_session(&sha256_hex(cookie), self.now()).await
    }

    /// The live session of a cookie, its last use written back at most once a minute.
    pub async fn session(&self, cookie: &str) -> Result<Option<Session>, StorageError> {
        let id_hash = sha256_hex(cookie);
        let Some(row) = self.storage.session(&id_hash).await? else { return Ok(None) };
        let now = self.now();
        let idle = (now - row.last_seen_at).to_std().unwrap_or_default();
        if row.revoked_at.is_some() || idle >= self.idle {
            return Ok(None);
        }
        if idle >= TOUCH_EVERY {
            self.storage.touch_session(&id_hash, now).await?;
        }
        let role: Role = row.role.parse().unwrap_or(Role::Viewer);
        let expires = now + self.idle;
        Ok(Some(Session {
            claims: Claims {
                sub: row.username,
                role,
                exp: u64::try_from(expires.timestamp()).unwrap_or(0),
                iat: u64::try_from(row.created_at.timestamp()).ok(),
            },
            csrf: row.csrf,
        }))
    }

    /// The live session of a request's cookie, if it has one.
    pub async fn session_of(&self, headers: &axum::http::HeaderMap) -> Result<Option<Session>, StorageError> {
        match sothebais_kit::access::cookie(headers, sothebais_kit::access::SESSION_COOKIE) {
            Some(value) => self.session(value).await,
            None => Ok(None),
        }
    }

    /// When no admin account exists: a fresh one-time sign-in token (the previous
    /// one stops working). `None` when an admin exists.
    pub async fn first_start_token(&self) -> Result<Option<String>, StorageError> {
        let accounts = self.storage.accounts().await?;
        if accounts.iter().any(|account| account.role == Role::Admin.as_str()) {
            return Ok(None);
        }
        let token = random_hex();
        *self.first_login.lock().map_err(|_| poisoned())? = Some(sha256_hex(&token));
        Ok(Some(token))
    }

    /// Uses the one-time token: a session as `admin`, which then sets its password.
    /// `None` when the token is wrong or used, or an admin exists by now.
    pub async fn first_login(&self, token: &str) -> Result<Option<NewSession>, StorageError> {
        let expected = self.first_login.lock().map_err(|_| poisoned())?.take();
        let Some(expected) = expected else { return Ok(None) };
        if !sothebais_kit::access::constant_time_eq(&expected, &sha256_hex(token)) {
            *self.first_login.lock().map_err(|_| poisoned())? = Some(expected);
            return Ok(None);
        }
        let accounts = self.storage.accounts().await?;
        if accounts.iter().any(|account| account.role == Role::Admin.as_str()) {
            return Ok(None);
        }
        self.open_session("admin", Role::Admin).await.map(Some)
    }
}

fn poisoned() -> StorageError {
    StorageError::Database("the login throttle's lock was poisoned".into())
}

impl SessionStore for Accounts {
    fn resolve<'a>(&'a self, cookie: &'a str) -> BoxFuture<'a, Result<Option<Session>, Failure>> {
        Box::pin(async move {
            self.session(cookie).await.map_err(|error| {
                tracing::warn!(%error, "session lookup failed");
                Failure::unavailable("the session store (database)")
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_and_no_other() {
        let hash = hash_password("correct horse battery");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "correct horse battery!"));
        assert!(!verify_password("not a hash", "anything"));
        assert_ne!(hash, hash_password("correct horse battery"), "each hash has its own salt");
    }

    #[test]
    fn names_passwords_and_roles_are_checked() {
        assert!(check_name("ada.l-ovelace_1").is_ok());
        for bad in ["Ada", "", &"a".repeat(33), "ada lovelace"] {
            assert!(matches!(check_name(bad), Err(AccountError::BadName)), "{bad:?}");
        }
        assert!(matches!(check_password("short"), Err(AccountError::ShortPassword)));
        assert!(check_password("long enough!").is_ok());
        assert!(matches!(console_role(Role::Bidder), Err(AccountError::BadRole)));
        assert!(matches!(console_role(Role::Viewer), Ok(Role::Viewer)));
    }
}
