//! Access tokens in the backend: the HS256 secret, issuing tokens, and the axum
//! extractors that check a request's token and role. Checking a token
//! (`Authenticator`, `Role`, `Claims`) lives in the `sothebais-auth` crate, shared
//! with the renderer.

use std::path::Path;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

use crate::error::Error;
pub use sothebais_auth::{Authenticator, Claims, Role};

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
        let auth =
            Authenticator::new(Some(secret().expose_secret().as_bytes()), None, reqwest::Client::new());
        let claims = auth.verify(&token).await.expect("valid");
        assert_eq!((claims.sub.as_str(), claims.role), ("alice", Role::Operator));
    }

    #[tokio::test]
    async fn token_signed_with_another_secret_is_refused() {
        let other = SecretString::from("another-secret-entirely".to_owned());
        let token = issue_token(&other, "mallory", Role::Admin, Duration::from_secs(60)).expect("sign");
        let auth =
            Authenticator::new(Some(secret().expose_secret().as_bytes()), None, reqwest::Client::new());
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
