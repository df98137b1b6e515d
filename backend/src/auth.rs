//! Access tokens: JWTs signed with HS256 (`JWT_SECRET`) or RS256 from an OIDC
//! provider's JWKS (`AUTH_JWKS_URL`), carrying a role.
//!
//! Roles nest `admin ⊃ operator ⊃ viewer`; `bidder` may bid as its own `sub` and read
//! what a viewer reads. Operators and admins may bid for anyone.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::error::Error;

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Bidder,
    Operator,
    Admin,
}

impl Role {
    /// Whether a holder of `self` may do what needs `required`.
    pub fn satisfies(self, required: Role) -> bool {
        use Role::*;
        match required {
            Viewer => true,
            Bidder => matches!(self, Bidder | Operator | Admin),
            Operator => matches!(self, Operator | Admin),
            Admin => self == Admin,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Bidder => "bidder",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "viewer" => Ok(Role::Viewer),
            "bidder" => Ok(Role::Bidder),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?}: use admin, operator, viewer or bidder")),
        }
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub exp: u64,
    #[serde(default)]
    pub iat: Option<u64>,
}

/// Reads the HS256 secret: `JWT_SECRET` when set, else the file `jwt_secret` in the
/// data dir, created with a fresh random secret (mode 0600) on first start.
pub fn load_or_create_secret(
    configured: Option<&SecretString>,
    data_dir: &Path,
) -> anyhow::Result<SecretString> {
    use anyhow::Context as _;
    if let Some(secret) = configured {
        return Ok(secret.clone());
    }
    let path = data_dir.join("jwt_secret");
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= 16 => return Ok(SecretString::from(text.trim().to_owned())),
        Ok(_) => {
            anyhow::bail!("{} is too short to be a signing secret; delete it to regenerate", path.display())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    }
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

/// Checks tokens.
pub struct Authenticator {
    hs256: DecodingKey,
    jwks: Option<Jwks>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Authenticator")
            .field("jwks", &self.jwks.as_ref().map(|jwks| &jwks.url))
            .finish()
    }
}

/// RS256 keys of an OIDC provider, fetched on demand and refreshed when a token names
/// an unknown key id (at most every 30 s).
struct Jwks {
    url: String,
    client: reqwest::Client,
    cache: RwLock<KeyCache>,
}

/// The keys fetched so far and when they were last fetched.
#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, Arc<DecodingKey>>,
    fetched_at: Option<Instant>,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kid: Option<String>,
    kty: String,
    n: Option<String>,
    e: Option<String>,
}

impl Jwks {
    async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, String> {
        if let Some(key) = self.cache.read().await.keys.get(kid) {
            return Ok(key.clone());
        }
        let mut cache = self.cache.write().await;
        let recently = cache.fetched_at.is_some_and(|at| at.elapsed() < Duration::from_secs(30));
        if !recently {
            cache.fetched_at = Some(Instant::now());
            match self.fetch().await {
                Ok(keys) => cache.keys = keys,
                Err(error) => tracing::warn!(url = %self.url, %error, "could not fetch the JWKS"),
            }
        }
        cache.keys.get(kid).cloned().ok_or_else(|| format!("unknown signing key {kid:?}"))
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<DecodingKey>>, String> {
        let set: JwkSet = self
            .client
            .get(&self.url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|error| error.to_string())?
            .json()
            .await
            .map_err(|error| error.to_string())?;
        let mut keys = HashMap::new();
        for jwk in set.keys {
            if let (Some(kid), "RSA", Some(n), Some(e)) = (jwk.kid, jwk.kty.as_str(), jwk.n, jwk.e) {
                match DecodingKey::from_rsa_components(&n, &e) {
                    Ok(key) => {
                        keys.insert(kid, Arc::new(key));
                    }
                    Err(error) => tracing::warn!(%kid, %error, "skipping an unusable JWKS key"),
                }
            }
        }
        Ok(keys)
    }
}

impl Authenticator {
    pub fn new(secret: &SecretString, jwks_url: Option<String>, client: reqwest::Client) -> Authenticator {
        Authenticator {
            hs256: DecodingKey::from_secret(secret.expose_secret().as_bytes()),
            jwks: jwks_url.map(|url| Jwks { url, client, cache: RwLock::new(KeyCache::default()) }),
        }
    }

    /// Verifies a bearer token and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed token".to_owned())?;
        let mut validation = Validation::new(header.alg);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 30;
        let claims = match header.alg {
            Algorithm::HS256 => jsonwebtoken::decode::<Claims>(token, &self.hs256, &validation),
            Algorithm::RS256 => {
                let jwks =
                    self.jwks.as_ref().ok_or("RS256 tokens are not accepted: AUTH_JWKS_URL is not set")?;
                let kid = header.kid.ok_or("RS256 token without a key id")?;
                let key = jwks.key(&kid).await?;
                jsonwebtoken::decode::<Claims>(token, &key, &validation)
            }
            other => return Err(format!("unsupported token algorithm {other:?}")),
        };
        claims.map(|data| data.claims).map_err(|error| match error.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => "token expired".to_owned(),
            jsonwebtoken::errors::ErrorKind::InvalidSignature => "bad token signature".to_owned(),
            _ => format!("invalid token: {error}"),
        })
    }
}

/// Who is calling: anonymous, or the verified claims of the bearer token.
/// A token that is present but invalid is refused with 401 right away.
#[derive(Debug, Clone)]
pub struct Caller(pub Option<Claims>);

impl Caller {
    /// The claims, when the caller holds at least `required`.
    pub fn require(&self, required: Role) -> Result<&Claims, Error> {
        match &self.0 {
            None => Err(Error::Unauthenticated(format!("this needs a bearer token with role {required}"))),
            Some(claims) if claims.role.satisfies(required) => Ok(claims),
            Some(claims) => Err(Error::Forbidden(format!(
                "this needs role {required}; the token has role {}",
                claims.role
            ))),
        }
    }
}

/// A role a handler requires, as a type (see [`Authorized`]).
pub trait RequiredRole: Send + Sync {
    const ROLE: Role;
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
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let claims = caller.require(R::ROLE)?.clone();
        Ok(Authorized(claims, std::marker::PhantomData))
    }
}

/// State from which the [`Caller`] extractor finds the authenticator.
pub trait HasAuthenticator {
    fn authenticator(&self) -> &Authenticator;
}

impl<S: HasAuthenticator + Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            return Ok(Caller(None));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|text| text.strip_prefix("Bearer ").or_else(|| text.strip_prefix("bearer ")))
            .ok_or_else(|| {
                Error::Unauthenticated("the Authorization header must be `Bearer <token>`".into())
            })?;
        let claims = state.authenticator().verify(token.trim()).await.map_err(Error::Unauthenticated)?;
        Ok(Caller(Some(claims)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SecretString {
        SecretString::from("test-secret-of-enough-length".to_owned())
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
        let auth = Authenticator::new(&secret(), None, reqwest::Client::new());
        let claims = auth.verify(&token).await.expect("valid");
        assert_eq!((claims.sub.as_str(), claims.role), ("alice", Role::Operator));
    }

    #[tokio::test]
    async fn token_signed_with_another_secret_is_refused() {
        let other = SecretString::from("another-secret-entirely".to_owned());
        let token = issue_token(&other, "mallory", Role::Admin, Duration::from_secs(60)).expect("sign");
        let auth = Authenticator::new(&secret(), None, reqwest::Client::new());
        assert_eq!(auth.verify(&token).await, Err("bad token signature".to_owned()));
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
    fn generated_secret_is_reused_on_the_next_start() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = load_or_create_secret(None, dir.path()).expect("create");
        let second = load_or_create_secret(None, dir.path()).expect("reuse");
        assert_eq!(first.expose_secret(), second.expose_secret());
        assert!(first.expose_secret().len() >= 32);
    }
}
