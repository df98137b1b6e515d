//! Access tokens: JWTs signed with HS256 (`JWT_SECRET`) or RS256 from an OIDC
//! provider's JWKS (`AUTH_JWKS_URL`), carrying a role. Used by the backend and the
//! renderer's stream manager API, so both accept the same tokens. (A crate of its
//! own: `sothebais-shared` holds wire types and stays free of I/O.)
//!
//! Roles nest `admin ⊃ operator ⊃ viewer`; `bidder` may bid as its own `sub` and read
//! what a viewer reads. Operators and admins may bid for anyone.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

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

/// Checks tokens.
pub struct Authenticator {
    hs256: Option<DecodingKey>,
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
    /// Checks HS256 tokens signed with `secret` and RS256 tokens from the JWKS at
    /// `jwks_url`, each when it is given.
    pub fn new(secret: Option<&[u8]>, jwks_url: Option<String>, client: reqwest::Client) -> Authenticator {
        Authenticator {
            hs256: secret.map(DecodingKey::from_secret),
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
            Algorithm::HS256 => {
                let key =
                    self.hs256.as_ref().ok_or("HS256 tokens are not accepted: there is no JWT secret")?;
                jsonwebtoken::decode::<Claims>(token, key, &validation)
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    /// Serves `body` as JSON at every path of a local port, counting requests.
    async fn serve_jwks(body: String) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().expect("addr"));
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            }
        });
        (url, hits)
    }

    const JWKS: &str = include_str!("../fixtures/rs256_jwks.json");
    const PRIVATE_KEY: &[u8] = include_bytes!("../fixtures/rs256_private.pem");

    fn rs256(pem: &[u8], kid: &str, role: &str) -> String {
        let exp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
                + 600;
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        let claims = serde_json::json!({ "sub": "user_2abc", "role": role, "exp": exp });
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_pem(pem).expect("pem")).expect("sign")
    }

    #[tokio::test]
    async fn rs256_tokens_verify_against_the_providers_jwks() {
        let (url, hits) = serve_jwks(JWKS.to_owned()).await;
        let auth = Authenticator::new(None, Some(url), reqwest::Client::new());
        let claims = auth.verify(&rs256(PRIVATE_KEY, "test-key-1", "operator")).await.expect("valid");
        assert_eq!((claims.sub.as_str(), claims.role), ("user_2abc", Role::Operator));
        // The keys are cached: a second token needs no second fetch.
        auth.verify(&rs256(PRIVATE_KEY, "test-key-1", "admin")).await.expect("valid");
        assert_eq!(hits.load(std::sync::atomic::Ordering::Relaxed), 1);

        // A key the provider does not list, and a listed key id with a signature that
        // is not its own, are refused.
        assert_eq!(
            auth.verify(&rs256(PRIVATE_KEY, "key-2", "admin")).await,
            Err("unknown signing key \"key-2\"".to_owned())
        );
        let admin = rs256(PRIVATE_KEY, "test-key-1", "admin");
        let operator = rs256(PRIVATE_KEY, "test-key-1", "operator");
        let (claims, _) = admin.rsplit_once('.').expect("a JWT");
        let (_, signature) = operator.rsplit_once('.').expect("a JWT");
        assert_eq!(
            auth.verify(&format!("{claims}.{signature}")).await,
            Err("bad token signature".to_owned())
        );
    }

    #[tokio::test]
    async fn each_kind_of_token_needs_its_key_configured() {
        let hs256 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({ "sub": "ops", "role": "operator", "exp": u64::MAX / 2 }),
            &EncodingKey::from_secret(b"a-secret-of-enough-length"),
        )
        .expect("sign");
        let only_jwks =
            Authenticator::new(None, Some("http://127.0.0.1:9/jwks".into()), reqwest::Client::new());
        assert_eq!(
            only_jwks.verify(&hs256).await,
            Err("HS256 tokens are not accepted: there is no JWT secret".to_owned())
        );
        let only_secret =
            Authenticator::new(Some(b"a-secret-of-enough-length"), None, reqwest::Client::new());
        assert!(only_secret.verify(&hs256).await.is_ok());
        assert_eq!(
            only_secret.verify(&rs256(PRIVATE_KEY, "test-key-1", "operator")).await,
            Err("RS256 tokens are not accepted: AUTH_JWKS_URL is not set".to_owned())
        );
    }
}
