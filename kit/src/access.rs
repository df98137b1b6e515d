//! Access tokens in both binaries, on top of `sothebais-auth` (which checks them):
//! the HS256 signing secret and its file, minting tokens, and the axum extractors
//! that find a request's caller and require a role.

use std::path::Path;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use futures::future::BoxFuture;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretString};
pub use sothebais_auth::{Authenticator, Claims, Role};

use crate::http::Failure;

/// The shortest signing secret accepted, in characters.
pub const MIN_SECRET_LEN: usize = 16;

/// The name of the secret's file in the data folder.
pub const SECRET_FILE: &str = "jwt_secret";

/// Checks a configured `JWT_SECRET`. The value is never echoed: it is a secret.
pub fn parse_secret(value: &str) -> Result<SecretString, String> {
    if value.trim().len() < MIN_SECRET_LEN {
        return Err(format!("must be at least {MIN_SECRET_LEN} characters"));
    }
    Ok(SecretString::from(value.trim().to_owned()))
}

/// Reads the HS256 secret: `configured` (`JWT_SECRET`) when set, else the file
/// `jwt_secret` in the data folder; `None` when neither exists. For processes that
/// use the backend's secret without owning it (the renderer).
pub fn read_secret(
    configured: Option<&SecretString>,
    data_dir: &Path,
) -> anyhow::Result<Option<SecretString>> {
    use anyhow::Context as _;
    if let Some(secret) = configured {
        return Ok(Some(secret.clone()));
    }
    let path = data_dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_secret(&text)
            .map(Some)
            .map_err(|reason| anyhow::anyhow!("{}: {reason}; delete it to regenerate", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// Reads the HS256 secret like [`read_secret`], creating the file with a fresh
/// random secret (mode 0600) on first start. For the backend, which owns it.
pub fn load_or_create_secret(
    configured: Option<&SecretString>,
    data_dir: &Path,
) -> anyhow::Result<SecretString> {
    use anyhow::Context as _;
    if let Some(secret) = read_secret(configured, data_dir)? {
        return Ok(secret);
    }
    let path = data_dir.join(SECRET_FILE);
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a new JWT signing secret");
    Ok(SecretString::from(secret))
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// Signs an HS256 token for `sub` with `role`, valid for `ttl`.
pub fn issue_token(secret: &SecretString, sub: &str, role: Role, ttl: Duration) -> anyhow::Result<String> {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims { sub: sub.to_owned(), role, exp: now + ttl.as_secs(), iat: Some(now) };
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose_secret().as_bytes()),
    )?)
}

/// Parses a duration such as `90s`, `15m`, `1h` or `7d`.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let number: u64 =
        number.parse().map_err(|_| format!("{text:?} is not a duration such as 30m, 1h or 7d"))?;
    let seconds = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use s, m, h or d)")),
    };
    if number == 0 {
        return Err("a token must live longer than 0 s".into());
    }
    Ok(Duration::from_secs(number * seconds))
}

/// The bearer token of a request: `None` without an `Authorization` header, 401 when
/// the header is not `Bearer <token>`.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Failure> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else { return Ok(None) };
    value
        .to_str()
        .ok()
        .and_then(|text| text.strip_prefix("Bearer ").or_else(|| text.strip_prefix("bearer ")))
        .map(|token| Some(token.trim()))
        .ok_or_else(|| Failure::unauthenticated("the Authorization header must be `Bearer <token>`"))
}

/// The cookie a signed-in browser holds (the console's sessions).
pub const SESSION_COOKIE: &str = "sothebais_session";

/// The header a write made with the session cookie must carry: the session's CSRF
/// token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How a caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A bearer token (scripts, the renderer, other services).
    Token,
    /// The console's session cookie.
    Session,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Token => "token",
            Via::Session => "session",
        }
    }
}

/// Who is calling: anonymous, or the verified claims of a bearer token or session.
/// A token that is present but invalid is refused with 401 right away; a cookie
/// write without its CSRF token with 403.
#[derive(Debug, Clone)]
pub struct Caller(pub Option<Claims>);

impl Caller {
    /// The claims, when the caller holds at least `required`.
    pub fn require(&self, required: Role) -> Result<&Claims, Failure> {
        match &self.0 {
            None => Err(Failure::unauthenticated(format!(
                "this needs role {required}: sign in, or send a bearer token"
            ))),
            Some(claims) if claims.role.satisfies(required) => Ok(claims),
            Some(claims) => Err(Failure::forbidden(format!(
                "this needs role {required}; the caller has role {}",
                claims.role
            ))),
        }
    }
}

/// A signed-in browser's session, as resolved from its cookie.
#[derive(Debug, Clone)]
pub struct Session {
    pub claims: Claims,
    /// The token every write made with this session must carry in [`CSRF_HEADER`].
    pub csrf: String,
}

/// Where sessions are looked up: the backend's accounts. `Ok(None)` for an unknown,
/// expired or revoked session (the caller is then anonymous).
pub trait SessionStore: Send + Sync {
    fn resolve<'a>(&'a self, cookie: &'a str) -> BoxFuture<'a, Result<Option<Session>, Failure>>;
}

/// State from which the [`Caller`] extractor finds the authenticator; `None` when
/// this process cannot check tokens (it then refuses every write with 503).
pub trait HasAuthenticator {
    fn authenticator(&self) -> Option<&Authenticator>;

    /// The session store, where this process signs browsers in (the backend's
    /// gateway); `None` elsewhere, and session cookies are then ignored.
    fn sessions(&self) -> Option<&dyn SessionStore> {
        None
    }
}

impl<T: HasAuthenticator> HasAuthenticator for std::sync::Arc<T> {
    fn authenticator(&self) -> Option<&Authenticator> {
        T::authenticator(self)
    }

    fn sessions(&self) -> Option<&dyn SessionStore> {
        T::sessions(self)
    }
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Where the caller of a request is written once it is known, for the audit trail:
/// a middleware puts one in the request's extensions and reads it after the handler.
#[derive(Debug, Clone, Default)]
pub struct CallerSlot(std::sync::Arc<std::sync::Mutex<Option<(Claims, Via)>>>);

impl CallerSlot {
    pub fn set(&self, claims: &Claims, via: Via) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some((claims.clone(), via));
        }
    }

    pub fn get(&self) -> Option<(Claims, Via)> {
        self.0.lock().ok().and_then(|slot| slot.clone())
    }
}

impl<S: HasAuthenticator + Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let (claims, via) = if let Some(token) = bearer(&parts.headers)? {
            let Some(authenticator) = state.authenticator() else {
                return Err(Failure::unavailable("token checking (configure JWT_SECRET or AUTH_JWKS_URL)"));
            };
            (authenticator.verify(token).await.map_err(Failure::unauthenticated)?, Via::Token)
        } else if let (Some(store), Some(value)) = (state.sessions(), cookie(&parts.headers, SESSION_COOKIE))
        {
            let Some(session) = store.resolve(value).await? else { return Ok(Caller(None)) };
            let sent = parts.headers.get(CSRF_HEADER).and_then(|value| value.to_str().ok());
            if !parts.method.is_safe() && !constant_time_eq(sent.unwrap_or(""), &session.csrf) {
                return Err(Failure::forbidden(format!(
                    "a write made with the session cookie needs the session's CSRF token in the {CSRF_HEADER} header"
                )));
            }
            (session.claims, Via::Session)
        } else {
            return Ok(Caller(None));
        };
        if let Some(slot) = parts.extensions.get::<CallerSlot>() {
            slot.set(&claims, via);
        }
        Ok(Caller(Some(claims)))
    }
}

/// Compares two secrets in time that depends on their lengths only.
pub fn constant_time_eq(left: &str, right: &str) -> bool {
    left.len() == right.len()
        && left.bytes().zip(right.bytes()).fold(0u8, |difference, (a, b)| difference | (a ^ b)) == 0
}

/// A role a handler requires, as a type (see [`Authorized`]).
pub trait RequiredRole: Send + Sync {
    const ROLE: Role;
}

/// Requires `viewer`: any signed-in caller (every role holds it).
#[derive(Debug)]
pub struct ViewerRole;
impl RequiredRole for ViewerRole {
    const ROLE: Role = Role::Viewer;
}

/// Requires `operator` (or `admin`).
#[derive(Debug)]
pub struct OperatorRole;
impl RequiredRole for OperatorRole {
    const ROLE: Role = Role::Operator;
}

/// Requires `admin`.
#[derive(Debug)]
pub struct AdminRole;
impl RequiredRole for AdminRole {
    const ROLE: Role = Role::Admin;
}

/// Requires `bidder` (or an operator bidding for someone).
#[derive(Debug)]
pub struct BidderRole;
impl RequiredRole for BidderRole {
    const ROLE: Role = Role::Bidder;
}

/// The claims of a caller holding at least `R`; refused with 401 or 403 before the
/// request body is read.
#[derive(Debug, Clone)]
pub struct Authorized<R>(pub Claims, pub std::marker::PhantomData<R>);

impl<S: HasAuthenticator + Send + Sync, R: RequiredRole> FromRequestParts<S> for Authorized<R> {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let claims = caller.require(R::ROLE)?.clone();
        Ok(Authorized(claims, std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SecretString {
        SecretString::from("test-secret-of-enough-length".to_owned())
    }

    fn authenticator() -> Authenticator {
        Authenticator::new(Some(secret().expose_secret().as_bytes()), None, reqwest::Client::new())
    }

    #[test]
    fn roles_nest_admin_operator_viewer_with_bidder_beside() {
        assert!(Role::Admin.satisfies(Role::Operator));
        assert!(Role::Operator.satisfies(Role::Viewer));
        assert!(!Role::Viewer.satisfies(Role::Operator));
        assert!(!Role::Operator.satisfies(Role::Admin));
        assert!(Role::Bidder.satisfies(Role::Bidder));
        assert!(Role::Operator.satisfies(Role::Bidder));
        assert!(!Role::Viewer.satisfies(Role::Bidder));
        assert!(!Role::Bidder.satisfies(Role::Operator));
    }

    #[tokio::test]
    async fn issued_token_verifies_with_its_claims() {
        let token = issue_token(&secret(), "alice", Role::Operator, Duration::from_secs(60)).expect("sign");
        let claims = authenticator().verify(&token).await.expect("valid");
        assert_eq!((claims.sub.as_str(), claims.role), ("alice", Role::Operator));
    }

    #[tokio::test]
    async fn token_signed_with_another_secret_is_refused() {
        let other = SecretString::from("another-secret-entirely".to_owned());
        let token = issue_token(&other, "mallory", Role::Admin, Duration::from_secs(60)).expect("sign");
        assert_eq!(authenticator().verify(&token).await, Err("bad token signature".to_owned()));
    }

    #[test]
    fn ttl_accepts_units_and_refuses_nonsense() {
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("h").is_err());
        assert!(parse_ttl("0s").is_err());
    }

    #[test]
    fn generated_secret_is_reused_on_the_next_start_and_read_by_others() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(read_secret(None, dir.path()).expect("no file yet").is_none());
        let first = load_or_create_secret(None, dir.path()).expect("create");
        let second = load_or_create_secret(None, dir.path()).expect("reuse");
        let read = read_secret(None, dir.path()).expect("read").expect("present");
        assert_eq!(first.expose_secret(), second.expose_secret());
        assert_eq!(first.expose_secret(), read.expose_secret());
        assert!(first.expose_secret().len() >= 32);
    }

    #[test]
    fn short_secrets_are_refused_without_echoing_them() {
        let error = parse_secret("hunter2").expect_err("too short");
        assert!(!error.contains("hunter2"), "{error}");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(SECRET_FILE), "short").expect("write");
        assert!(read_secret(None, dir.path()).is_err());
    }

    #[test]
    fn bearer_header_is_parsed_and_anything_else_is_refused() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), Ok(None));
        headers.insert(axum::http::header::AUTHORIZATION, "Bearer abc".parse().expect("header"));
        assert_eq!(bearer(&headers), Ok(Some("abc")));
        headers.insert(axum::http::header::AUTHORIZATION, "Basic abc".parse().expect("header"));
        assert_eq!(bearer(&headers).map_err(|failure| failure.status.as_u16()), Err(401));
    }
}
