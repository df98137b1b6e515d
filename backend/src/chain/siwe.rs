//! Sign-In with Ethereum (EIP-4361) for wallet links: the message the backend asks a
//! wallet to sign, reading it back, and checking it. Pure: the nonce's record, the
//! time and the expected domain and chain are passed in; recovery is EIP-191's
//! `personal_sign`.

use alloy::primitives::{Address, Signature};
use chrono::{DateTime, SecondsFormat, Utc};

/// How long a nonce may be used after it was given.
pub const NONCE_TTL: chrono::Duration = chrono::Duration::minutes(10);

/// What the backend asks a wallet to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkMessage {
    /// The authority that asks (`host[:port]`), checked against `SOTHEBAIS_DOMAIN`.
    pub domain: String,
    pub address: Address,
    /// The X handle being linked, with its `@`, lower case.
    pub handle: String,
    pub uri: String,
    pub chain_id: u64,
    pub nonce: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The page a link message points at (its `URI`).
pub fn link_uri(domain: &str) -> String {
    format!("https://{domain}/link")
}

/// The statement line names the handle, so a signature links only that handle.
pub fn statement(handle: &str) -> String {
    format!("Link the X account {handle} to this wallet for SothebAIs bids.")
}

impl LinkMessage {
    /// The EIP-4361 text, address in EIP-55 checksum form.
    pub fn text(&self) -> String {
        format!(
            "{domain} wants you to sign in with your Ethereum account:\n{address}\n\n{statement}\n\nURI: {uri}\nVersion: 1\nChain ID: {chain}\nNonce: {nonce}\nIssued At: {issued}\nExpiration Time: {expires}",
            domain = self.domain,
            address = self.address.to_checksum(None),
            statement = statement(&self.handle),
            uri = self.uri,
            chain = self.chain_id,
            nonce = self.nonce,
            issued = self.issued_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            expires = self.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        )
    }

    /// Reads an EIP-4361 message of the shape [`LinkMessage::text`] writes.
    pub fn parse(text: &str) -> Result<LinkMessage, LinkError> {
        let malformed = |what: &str| LinkError::Malformed(what.to_owned());
        let mut lines = text.lines();
        let domain = lines
            .next()
            .and_then(|line| line.strip_suffix(" wants you to sign in with your Ethereum account:"))
            .ok_or_else(|| malformed("the first line names the domain"))?
            .to_owned();
        let address_line = lines.next().ok_or_else(|| malformed("the second line is the address"))?;
        let address: Address =
            address_line.parse().map_err(|_| malformed("the second line is the address"))?;
        if address_line != address.to_checksum(None) {
            return Err(malformed("the address is in EIP-55 checksum form"));
        }
        if lines.next() != Some("") {
            return Err(malformed("a blank line follows the address"));
        }
        let statement_line = lines.next().ok_or_else(|| malformed("the statement names the handle"))?;
        let handle = statement_line
            .strip_prefix("Link the X account ")
            .and_then(|rest| rest.strip_suffix(" to this wallet for SothebAIs bids."))
            .ok_or_else(|| malformed("the statement names the handle"))?
            .to_owned();
        if lines.next() != Some("") {
            return Err(malformed("a blank line follows the statement"));
        }
        let mut field = |name: &str| -> Result<String, LinkError> {
            lines
                .next()
                .and_then(|line| line.strip_prefix(name)?.strip_prefix(": "))
                .map(str::to_owned)
                .ok_or_else(|| LinkError::Malformed(format!("the `{name}` line")))
        };
        let uri = field("URI")?;
        if field("Version")? != "1" {
            return Err(malformed("`Version: 1`"));
        }
        let chain_id = field("Chain ID")?.parse().map_err(|_| malformed("`Chain ID` is a number"))?;
        let nonce = field("Nonce")?;
        let time = |value: String, name: &str| {
            DateTime::parse_from_rfc3339(&value)
                .map(|time| time.with_timezone(&Utc))
                .map_err(|_| LinkError::Malformed(format!("`{name}` is an RFC 3339 time")))
        };
        let issued_at = time(field("Issued At")?, "Issued At")?;
        let expires_at = time(field("Expiration Time")?, "Expiration Time")?;
        if lines.next().is_some() {
            return Err(malformed("nothing follows `Expiration Time`"));
        }
        Ok(LinkMessage { domain, address, handle, uri, chain_id, nonce, issued_at, expires_at })
    }
}

/// A nonce as the backend gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedNonce {
    pub nonce: String,
    pub handle: String,
    pub address: Address,
    pub issued_at: DateTime<Utc>,
    pub used: bool,
}

/// Why a link was refused; each names what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the message is not the one to sign: {0}")]
    Malformed(String),
    #[error("the nonce was not given by this backend")]
    UnknownNonce,
    #[error("the nonce was used already")]
    NonceUsed,
    #[error("the nonce has expired; ask for a new message")]
    NonceExpired,
    #[error("the message is for domain {found:?}, not {expected:?}")]
    WrongDomain { expected: String, found: String },
    #[error("the message is for chain {found}, not {expected}")]
    WrongChain { expected: u64, found: u64 },
    #[error("the message names {found}, not the {what} {expected}")]
    Mismatch { what: &'static str, expected: String, found: String },
    #[error("the signature is not a 65-byte hex signature")]
    UnreadableSignature,
    #[error("the signature is by {recovered}, not by {address}")]
    WrongSigner { address: Address, recovered: Address },
}

impl LinkError {
    /// The envelope's code for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            LinkError::Malformed(_) | LinkError::Mismatch { .. } => "INVALID_MESSAGE",
            LinkError::UnknownNonce => "UNKNOWN_NONCE",
            LinkError::NonceUsed => "NONCE_USED",
            LinkError::NonceExpired => "NONCE_EXPIRED",
            LinkError::WrongDomain { .. } => "WRONG_DOMAIN",
            LinkError::WrongChain { .. } => "WRONG_CHAIN",
            LinkError::UnreadableSignature | LinkError::WrongSigner { .. } => "INVALID_SIGNATURE",
        }
    }
}

/// What a link request must match.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub domain: &'a str,
    pub chain_id: u64,
    pub handle: &'a str,
    pub address: Address,
    pub now: DateTime<Utc>,
}

/// Checks a signed link message against the nonce record and what is expected; the
/// caller marks the nonce used (once, atomically) only after this passes.
pub fn verify(
    text: &str,
    signature: &str,
    nonce: Option<&IssuedNonce>,
    expected: &Expected<'_>,
) -> Result<LinkMessage, LinkError> {
    let message = LinkMessage::parse(text)?;
    if message.domain != expected.domain {
        return Err(LinkError::WrongDomain { expected: expected.domain.to_owned(), found: message.domain });
    }
    if message.chain_id != expected.chain_id {
        return Err(LinkError::WrongChain { expected: expected.chain_id, found: message.chain_id });
    }
    if message.address != expected.address {
        return Err(LinkError::Mismatch {
            what: "address",
            expected: expected.address.to_checksum(None),
            found: message.address.to_checksum(None),
        });
    }
    let uri = link_uri(expected.domain);
    if message.uri != uri {
        return Err(LinkError::Mismatch { what: "URI", expected: uri, found: message.uri });
    }
    if message.handle != expected.handle {
        return Err(LinkError::Mismatch {
            what: "handle",
            expected: expected.handle.to_owned(),
            found: message.handle,
        });
    }
    let nonce = nonce.filter(|nonce| nonce.nonce == message.nonce).ok_or(LinkError::UnknownNonce)?;
    if nonce.used {
        return Err(LinkError::NonceUsed);
    }
    if nonce.handle != message.handle || nonce.address != message.address {
        return Err(LinkError::UnknownNonce);
    }
    if expected.now > nonce.issued_at + NONCE_TTL || expected.now > message.expires_at {
        return Err(LinkError::NonceExpired);
    }
    let signature: Signature = signature.trim().parse().map_err(|_| LinkError::UnreadableSignature)?;
    let recovered =
        signature.recover_address_from_msg(text.as_bytes()).map_err(|_| LinkError::UnreadableSignature)?;
    if recovered != message.address {
        return Err(LinkError::WrongSigner { address: message.address, recovered });
    }
    Ok(message)
}

/// A handle as links store it: `@name`, lower case.
pub fn normal_handle(handle: &str) -> Option<String> {
    let name = handle.trim().trim_start_matches('@');
    let valid = !name.is_empty()
        && name.len() <= 15
        && name.chars().all(|character| character.is_ascii_alphanumeric() || character == '_');
    valid.then(|| format!("@{}", name.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::SignerSync;
    use alloy::signers::local::PrivateKeySigner;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("time")
    }

    fn signed() -> (PrivateKeySigner, IssuedNonce, String, String) {
        let signer = PrivateKeySigner::random();
        let message = LinkMessage {
            domain: "show.example".into(),
            address: signer.address(),
            handle: "@curie".into(),
            uri: link_uri("show.example"),
            chain_id: 1,
            nonce: "n0nce0001".into(),
            issued_at: at(0),
            expires_at: at(600),
        };
        let text = message.text();
        let signature = signer.sign_message_sync(text.as_bytes()).expect("sign");
        let nonce = IssuedNonce {
            nonce: message.nonce.clone(),
            handle: message.handle.clone(),
            address: message.address,
            issued_at: at(0),
            used: false,
        };
        (signer, nonce, text, signature.to_string())
    }

    fn expected(address: Address) -> Expected<'static> {
        Expected { domain: "show.example", chain_id: 1, handle: "@curie", address, now: at(30) }
    }

    #[test]
    fn a_message_reads_back_as_written() {
        let (_, _, text, _) = signed();
        assert_eq!(LinkMessage::parse(&text).expect("parse").text(), text);
    }

    #[test]
    fn a_wallet_signing_its_own_message_is_linked() {
        let (signer, nonce, text, signature) = signed();
        let message = verify(&text, &signature, Some(&nonce), &expected(signer.address())).expect("linked");
        assert_eq!(message.handle, "@curie");
    }

    #[test]
    fn a_used_nonce_is_refused() {
        let (signer, mut nonce, text, signature) = signed();
        nonce.used = true;
        let error = verify(&text, &signature, Some(&nonce), &expected(signer.address())).expect_err("replay");
        assert_eq!(error, LinkError::NonceUsed);
    }

    #[test]
    fn a_nonce_older_than_its_ttl_is_refused() {
        let (signer, nonce, text, signature) = signed();
        let late = Expected { now: at(601), ..expected(signer.address()) };
        assert_eq!(verify(&text, &signature, Some(&nonce), &late), Err(LinkError::NonceExpired));
    }

    #[test]
    fn another_domain_or_chain_is_refused_with_both_named() {
        let (signer, nonce, text, signature) = signed();
        let other = Expected { domain: "evil.example", ..expected(signer.address()) };
        let error = verify(&text, &signature, Some(&nonce), &other).expect_err("domain");
        assert_eq!(error.code(), "WRONG_DOMAIN");
        assert!(error.to_string().contains("evil.example") && error.to_string().contains("show.example"));
        let other = Expected { chain_id: 5, ..expected(signer.address()) };
        assert_eq!(verify(&text, &signature, Some(&nonce), &other).expect_err("chain").code(), "WRONG_CHAIN");
    }

    #[test]
    fn a_signature_by_another_key_is_refused() {
        let (signer, nonce, text, _) = signed();
        let forged = PrivateKeySigner::random().sign_message_sync(text.as_bytes()).expect("sign").to_string();
        let error = verify(&text, &forged, Some(&nonce), &expected(signer.address())).expect_err("forged");
        assert!(matches!(error, LinkError::WrongSigner { .. }), "{error}");
        let error = verify(&text, "0x1234", Some(&nonce), &expected(signer.address())).expect_err("short");
        assert_eq!(error, LinkError::UnreadableSignature);
    }

    #[test]
    fn a_message_for_another_handle_is_refused() {
        let (signer, nonce, text, signature) = signed();
        let other = Expected { handle: "@hopper", ..expected(signer.address()) };
        assert!(matches!(
            verify(&text, &signature, Some(&nonce), &other),
            Err(LinkError::Mismatch { what: "handle", .. })
        ));
    }

    #[test]
    fn handles_are_stored_lower_case_with_their_at() {
        assert_eq!(normal_handle("Curie").as_deref(), Some("@curie"));
        assert_eq!(normal_handle("@Ada_L").as_deref(), Some("@ada_l"));
        assert_eq!(normal_handle("@"), None);
        assert_eq!(normal_handle("a b"), None);
    }
}
