//! Ethereum (docs/chain.md): the RPC client with a primary and a fallback endpoint,
//! the contracts, wallet links signed with Sign-In with Ethereum, and the checks of
//! funds and lots.
//!
//! Every read goes through [`Chain::call`]: one attempt per endpoint in order, each
//! with `ETH_RPC_TIMEOUT_MS` (or its share of a bid check's deadline), in two rounds
//! 50 ms apart, counted and timed by method. Balances and allowances are kept
//! `ETH_CACHE_TTL_MS` (in Redis when the bus is Redis), so a bidder's second bid in
//! a burst costs no RPC call.

pub mod api;
pub mod checks;
pub mod contracts;
pub mod siwe;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use secrecy::ExposeSecret;
use sothebais_shared::auction::Lot;

use crate::config::ChainConfig;
use contracts::{TestNFT, TestWETH};

/// Why a chain call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("no chain is configured (ETH_RPC_URL is unset)")]
    NotConfigured,
    #[error("{0} is not configured")]
    Missing(&'static str),
    #[error("the RPC endpoint {url} is on chain {found}, not ETH_CHAIN_ID {expected}")]
    WrongChain { url: String, expected: u64, found: u64 },
    #[error("{method} failed on every endpoint: {last}")]
    Unavailable { method: &'static str, last: String },
    #[error("{0}")]
    Invalid(String),
}

/// One RPC endpoint.
#[derive(Debug, Clone)]
struct Endpoint {
    /// `primary` or `fallback`, for logs and metrics.
    name: &'static str,
    /// Scheme, host and port: what logs and errors name.
    shown: String,
    /// The whole URL, scrubbed from error texts (a transport error quotes it).
    secret: secrecy::SecretString,
    provider: DynProvider,
}

/// A wallet's WETH balance and its allowance to the settlement contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Funds {
    pub balance: U256,
    pub allowance: U256,
}

impl Funds {
    /// Whether these cover `wei`.
    pub fn cover(&self, wei: U256) -> bool {
        self.balance >= wei && self.allowance >= wei
    }
}

/// The lot check that failed at an auction's creation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LotRefusal {
    #[error("the lot is on chain {lot}, the backend on chain {configured}")]
    WrongChain { lot: u64, configured: u64 },
    #[error("`lot.contract` is not an address: {0:?}")]
    BadContract(String),
    #[error("`lot.token_id` is not a token id: {0:?}")]
    BadToken(String),
    #[error("`consignor` must be the consignor's address (0x…) or a handle with a linked wallet")]
    NoConsignorWallet,
    #[error("ownerOf: token {token} is owned by {owner}, not by the consignor {consignor}")]
    NotOwner { token: String, owner: Address, consignor: Address },
    #[error(
        "approval: the consignor has not approved the settlement contract {settlement} for token {token}"
    )]
    NotApproved { token: String, settlement: Address },
    #[error("{check}: {error}")]
    Unchecked { check: &'static str, error: ChainError },
}

impl LotRefusal {
    /// The check named in the API's error (`details.check`).
    pub fn check(&self) -> &'static str {
        match self {
            LotRefusal::WrongChain { .. } => "chain_id",
            LotRefusal::BadContract(_) | LotRefusal::BadToken(_) => "lot",
            LotRefusal::NoConsignorWallet => "consignor",
            LotRefusal::NotOwner { .. } => "ownerOf",
            LotRefusal::NotApproved { .. } => "approval",
            LotRefusal::Unchecked { check, .. } => check,
        }
    }
}

/// The chain client.
#[derive(Debug)]
pub struct Chain {
    endpoints: Vec<Endpoint>,
    chain_id: u64,
    timeout: Duration,
    cache_ttl: Duration,
    weth: Option<Address>,
    settlement: Option<Address>,
    cache: FundsCache,
}

/// Where balances and allowances are kept for `ETH_CACHE_TTL_MS`: this process, or
/// Redis in production (shared by every process of the auction role). A cache that
/// fails is skipped: the chain is read instead.
#[derive(Clone)]
enum FundsCache {
    Memory(Arc<Mutex<HashMap<Address, (Instant, Funds)>>>),
    Redis { commands: redis::aio::ConnectionManager, prefix: String },
}

impl std::fmt::Debug for FundsCache {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            FundsCache::Memory(_) => "FundsCache::Memory",
            FundsCache::Redis { .. } => "FundsCache::Redis",
        })
    }
}

/// Where the funds cache lives: Redis (its URL and key prefix), or this process.
#[derive(Debug, Clone, Default)]
pub struct CacheAt {
    pub redis_url: Option<secrecy::SecretString>,
    pub prefix: String,
}

impl FundsCache {
    async fn open(at: &CacheAt) -> Result<FundsCache, ChainError> {
        let Some(url) = &at.redis_url else { return Ok(FundsCache::Memory(Arc::default())) };
        let client = redis::Client::open(url.expose_secret())
            .map_err(|error| ChainError::Invalid(format!("REDIS_URL for the chain cache: {error}")))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_millis(500))
            .set_number_of_retries(1);
        let commands = redis::aio::ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|error| ChainError::Invalid(format!("Redis for the chain cache: {error}")))?;
        Ok(FundsCache::Redis { commands, prefix: at.prefix.clone() })
    }

    fn key(prefix: &str, owner: Address) -> String {
        format!("{prefix}chain:funds:{}", owner.to_checksum(None))
    }

    async fn get(&self, owner: Address, ttl: Duration) -> Option<Funds> {
        match self {
            FundsCache::Memory(cache) => {
                let cache = cache.lock().ok()?;
                let (at, funds) = cache.get(&owner)?;
                (at.elapsed() < ttl).then_some(*funds)
            }
            FundsCache::Redis { commands, prefix } => {
                let mut commands = commands.clone();
                let value: Option<String> =
                    redis::cmd("GET").arg(Self::key(prefix, owner)).query_async(&mut commands).await.ok()?;
                let (balance, allowance) =
                    value?.split_once(':').map(|(a, b)| (a.to_owned(), b.to_owned()))?;
                Some(Funds { balance: balance.parse().ok()?, allowance: allowance.parse().ok()? })
            }
        }
    }

    /// Stores `funds` apart from the caller: a slow cache never delays a check.
    fn put(&self, owner: Address, funds: Funds, ttl: Duration) {
        let cache = self.clone();
        tokio::spawn(async move { cache.store(owner, funds, ttl).await });
    }

    async fn store(&self, owner: Address, funds: Funds, ttl: Duration) {
        match self {
            FundsCache::Memory(cache) => {
                if let Ok(mut cache) = cache.lock() {
                    if cache.len() > 100_000 {
                        cache.clear();
                    }
                    cache.insert(owner, (Instant::now(), funds));
                }
            }
            FundsCache::Redis { commands, prefix } => {
                let mut commands = commands.clone();
                let value = format!("{}:{}", funds.balance, funds.allowance);
                let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                let stored: Result<(), _> = redis::cmd("SET")
                    .arg(Self::key(prefix, owner))
                    .arg(value)
                    .arg("PX")
                    .arg(millis)
                    .query_async(&mut commands)
                    .await;
                if let Err(error) = stored {
                    tracing::warn!(%error, "the chain cache in Redis could not be written");
                }
            }
        }
    }
}

/// The longest a cache read may take before the chain is read instead.
pub const CACHE_READ_LIMIT: Duration = Duration::from_millis(50);

/// Tries per endpoint round, and the pause before the next round (doubling).
const ROUNDS: u32 = 2;
const BACKOFF: Duration = Duration::from_millis(50);

impl Chain {
    /// Connects to the configured endpoints and checks each one's chain id; `None`
    /// when no chain is configured. A reachable endpoint on another chain is an error
    /// (the backend does not start); an unreachable one is logged and tried again on
    /// each call.
    pub async fn connect(config: &ChainConfig, cache: &CacheAt) -> Result<Option<Chain>, ChainError> {
        let Some(primary) = &config.rpc_url else { return Ok(None) };
        let mut endpoints = Vec::new();
        for (name, url) in [("primary", Some(primary)), ("fallback", config.rpc_fallback_url.as_ref())] {
            let Some(url) = url else { continue };
            let parsed: reqwest::Url = url
                .expose_secret()
                .parse()
                .map_err(|_| ChainError::Invalid(format!("ETH RPC URL {name} is not a URL")))?;
            let endpoint = Endpoint {
                name,
                shown: endpoint_label(&parsed),
                secret: url.clone(),
                provider: ProviderBuilder::new().connect_http(parsed).erased(),
            };
            let shown = &endpoint.shown;
            match tokio::time::timeout(config.rpc_timeout, endpoint.provider.get_chain_id()).await {
                Ok(Ok(found)) if found != config.chain_id => {
                    return Err(ChainError::WrongChain {
                        url: shown.clone(),
                        expected: config.chain_id,
                        found,
                    });
                }
                Ok(Ok(_)) => {
                    tracing::info!(endpoint = name, url = %shown, chain_id = config.chain_id, "chain endpoint checked")
                }
                Ok(Err(error)) => {
                    let error = scrub(&error.to_string(), &endpoint);
                    tracing::warn!(endpoint = name, url = %shown, %error, "chain endpoint not answering at start")
                }
                Err(_) => tracing::warn!(endpoint = name, url = %shown, "chain endpoint timed out at start"),
            }
            endpoints.push(endpoint);
        }
        Ok(Some(Chain {
            endpoints,
            chain_id: config.chain_id,
            timeout: config.rpc_timeout,
            cache_ttl: config.cache_ttl,
            weth: config.weth,
            settlement: config.settlement,
            cache: FundsCache::open(cache).await?,
        }))
    }

    /// Whether WETH and the settlement contract are known, so funds can be read.
    pub fn can_check_funds(&self) -> bool {
        self.weth.is_some() && self.settlement.is_some()
    }

    /// Runs `call` against the endpoints in order until one answers, `ROUNDS` times
    /// with backoff between rounds; each attempt is limited to `ETH_RPC_TIMEOUT_MS`.
    pub async fn call<T, F, Fut, E>(&self, method: &'static str, call: F) -> Result<T, ChainError>
    where
        F: Fn(DynProvider) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        self.call_within(method, None, call).await
    }

    /// [`Chain::call`] within `budget`: each attempt gets the budget's share (every
    /// endpoint, every round) or `ETH_RPC_TIMEOUT_MS`, whichever is less, so a primary
    /// that hangs leaves the fallback time to answer.
    pub async fn call_within<T, F, Fut, E>(
        &self,
        method: &'static str,
        budget: Option<Duration>,
        call: F,
    ) -> Result<T, ChainError>
    where
        F: Fn(DynProvider) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let attempts = u32::try_from(self.endpoints.len()).unwrap_or(u32::MAX).max(1) * ROUNDS;
        let attempt_timeout = budget.map_or(self.timeout, |budget| (budget / attempts).min(self.timeout));
        let mut last = String::from("no endpoint");
        let mut pause = BACKOFF;
        for round in 0..ROUNDS {
            if round > 0 {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            for endpoint in &self.endpoints {
                let started = Instant::now();
                let outcome = tokio::time::timeout(attempt_timeout, call(endpoint.provider.clone())).await;
                let seconds = started.elapsed().as_secs_f64();
                let result = match outcome {
                    Ok(Ok(value)) => Ok(value),
                    Ok(Err(error)) => Err(scrub(&error.to_string(), endpoint)),
                    Err(_) => Err(format!("no answer within {} ms", attempt_timeout.as_millis())),
                };
                let label = if result.is_ok() { "ok" } else { "error" };
                metrics::counter!("chain_rpc_calls_total", "method" => method, "endpoint" => endpoint.name, "outcome" => label)
                    .increment(1);
                metrics::histogram!("chain_rpc_seconds", "method" => method).record(seconds);
                match result {
                    Ok(value) => return Ok(value),
                    Err(error) => {
                        tracing::debug!(method, endpoint = endpoint.name, url = %endpoint.shown, %error, "chain call failed");
                        last = format!("{} ({}): {error}", endpoint.name, endpoint.shown);
                    }
                }
            }
        }
        metrics::counter!("chain_rpc_errors_total", "method" => method).increment(1);
        Err(ChainError::Unavailable { method, last })
    }

    /// A wallet's WETH balance and allowance to the settlement contract, from the
    /// cache (this process's, or Redis in production) when read less than
    /// `ETH_CACHE_TTL_MS` ago.
    /// `budget` limits the chain reads (a bid check's deadline); the cache read takes
    /// at most [`CACHE_READ_LIMIT`] of it and the cache write none (it runs apart).
    pub async fn funds(&self, owner: Address, budget: Option<Duration>) -> Result<Funds, ChainError> {
        let started = Instant::now();
        if let Ok(Some(funds)) =
            tokio::time::timeout(CACHE_READ_LIMIT, self.cache.get(owner, self.cache_ttl)).await
        {
            metrics::counter!("chain_cache_total", "outcome" => "hit").increment(1);
            return Ok(funds);
        }
        metrics::counter!("chain_cache_total", "outcome" => "miss").increment(1);
        let left = budget.map(|budget| budget.saturating_sub(started.elapsed()));
        let funds = self.read_funds_within(owner, left).await?;
        self.cache.put(owner, funds, self.cache_ttl);
        Ok(funds)
    }

    /// Reads funds from the chain, never from the cache.
    pub async fn read_funds(&self, owner: Address) -> Result<Funds, ChainError> {
        self.read_funds_within(owner, None).await
    }

    async fn read_funds_within(&self, owner: Address, budget: Option<Duration>) -> Result<Funds, ChainError> {
        let weth = self.weth.ok_or(ChainError::Missing("ETH_WETH_ADDRESS"))?;
        let settlement = self.settlement.ok_or(ChainError::Missing("ETH_SETTLEMENT_ADDRESS"))?;
        let (balance, allowance) = tokio::try_join!(
            self.call_within("balanceOf", budget, |provider| async move {
                TestWETH::new(weth, provider).balanceOf(owner).call().await
            }),
            self.call_within("allowance", budget, |provider| async move {
                TestWETH::new(weth, provider).allowance(owner, settlement).call().await
            }),
        )?;
        Ok(Funds { balance, allowance })
    }

    /// Checks that `consignor` owns the lot's token and has approved the settlement
    /// contract for it (`getApproved` or `isApprovedForAll`).
    pub async fn check_lot(&self, lot: &Lot, consignor: Address) -> Result<(), LotRefusal> {
        if lot.chain_id != self.chain_id {
            return Err(LotRefusal::WrongChain { lot: lot.chain_id, configured: self.chain_id });
        }
        let nft: Address =
            lot.contract.trim().parse().map_err(|_| LotRefusal::BadContract(lot.contract.clone()))?;
        let token =
            parse_token_id(&lot.token_id).ok_or_else(|| LotRefusal::BadToken(lot.token_id.clone()))?;
        let settlement = self.settlement.ok_or(LotRefusal::Unchecked {
            check: "approval",
            error: ChainError::Missing("ETH_SETTLEMENT_ADDRESS"),
        })?;
        let owner =
            self.call("ownerOf", |provider| async move {
                TestNFT::new(nft, provider).ownerOf(token).call().await
            })
            .await
            .map_err(|error| LotRefusal::Unchecked { check: "ownerOf", error })?;
        if owner != consignor {
            return Err(LotRefusal::NotOwner { token: lot.token_id.clone(), owner, consignor });
        }
        let (approved, for_all) = tokio::try_join!(
            self.call("getApproved", |provider| async move {
                TestNFT::new(nft, provider).getApproved(token).call().await
            }),
            self.call("isApprovedForAll", |provider| async move {
                TestNFT::new(nft, provider).isApprovedForAll(consignor, settlement).call().await
            }),
        )
        .map_err(|error| LotRefusal::Unchecked { check: "approval", error })?;
        if approved != settlement && !for_all {
            return Err(LotRefusal::NotApproved { token: lot.token_id.clone(), settlement });
        }
        Ok(())
    }

    /// The latest block number, from the first endpoint that answers: what `/health`
    /// reports as `rpc`.
    pub async fn health(&self) -> Result<String, String> {
        self.call("blockNumber", |provider| async move { provider.get_block_number().await })
            .await
            .map(|block| format!("chain {} at block {block}", self.chain_id))
            .map_err(|error| error.to_string())
    }
}

/// What `sothebais chain deploy` deploys.
#[derive(Debug, Clone, Default)]
pub struct DeployRequest {
    pub weth: Option<Address>,
    pub fee_bps: u16,
    /// `None`: the operator.
    pub fee_recipient: Option<Address>,
    /// Deploy TestWETH and TestNFT first (local chains).
    pub test_tokens: bool,
}

/// Where the contracts landed.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub chain_id: u64,
    pub operator: Address,
    pub settlement: Address,
    pub weth: Address,
    pub test_nft: Option<Address>,
}

impl Deployed {
    /// What the command prints: the settings to add.
    pub fn report(&self) -> String {
        let mut text = format!(
            "settlement contract deployed on chain {} by the operator {}\n\nETH_SETTLEMENT_ADDRESS={}\nETH_WETH_ADDRESS={}",
            self.chain_id,
            self.operator.to_checksum(None),
            self.settlement.to_checksum(None),
            self.weth.to_checksum(None),
        );
        if let Some(nft) = self.test_nft {
            text.push_str(&format!("\n# TestNFT (mint with mint(to, tokenId)): {}", nft.to_checksum(None)));
        }
        text
    }
}

/// The operator's signer, from `ETH_OPERATOR_KEY` (hex, with or without `0x`).
pub fn operator_signer(config: &ChainConfig) -> Result<alloy::signers::local::PrivateKeySigner, ChainError> {
    let key = config.operator_key.as_ref().ok_or(ChainError::Missing("ETH_OPERATOR_KEY"))?;
    key.expose_secret()
        .parse()
        .map_err(|_| ChainError::Invalid("ETH_OPERATOR_KEY is not a private key (64 hex digits)".into()))
}

/// A provider that signs with the operator's key, after checking the chain id.
pub async fn operator_provider(config: &ChainConfig) -> Result<(DynProvider, Address), ChainError> {
    let url = config.rpc_url.as_ref().ok_or(ChainError::NotConfigured)?;
    let parsed: reqwest::Url =
        url.expose_secret().parse().map_err(|_| ChainError::Invalid("ETH_RPC_URL is not a URL".into()))?;
    let signer = operator_signer(config)?;
    let operator = signer.address();
    let provider = ProviderBuilder::new().wallet(signer).connect_http(parsed.clone()).erased();
    let found = tokio::time::timeout(config.rpc_timeout, provider.get_chain_id())
        .await
        .map_err(|_| ChainError::Unavailable { method: "chainId", last: "no answer in time".into() })?
        .map_err(|error| ChainError::Unavailable { method: "chainId", last: error.to_string() })?;
    if found != config.chain_id {
        return Err(ChainError::WrongChain {
            url: endpoint_label(&parsed),
            expected: config.chain_id,
            found,
        });
    }
    Ok((provider, operator))
}

/// Deploys the settlement contract (and the test tokens when asked).
pub async fn deploy(config: &ChainConfig, request: &DeployRequest) -> anyhow::Result<Deployed> {
    use anyhow::Context as _;
    let (provider, operator) = operator_provider(config).await?;
    let mut test_nft = None;
    let weth = if request.test_tokens {
        let weth = TestWETH::deploy(provider.clone()).await.context("deploying TestWETH")?;
        let nft = TestNFT::deploy(provider.clone()).await.context("deploying TestNFT")?;
        test_nft = Some(*nft.address());
        *weth.address()
    } else {
        request.weth.context(
            "WETH's address is needed: --weth or ETH_WETH_ADDRESS (or --test-tokens on a local chain)",
        )?
    };
    let fee_recipient = request.fee_recipient.unwrap_or(operator);
    let settlement = contracts::SothebaisSettlement::deploy(provider, weth, fee_recipient, request.fee_bps)
        .await
        .context("deploying the settlement contract")?;
    tracing::info!(settlement = %settlement.address(), %weth, fee_bps = request.fee_bps, "settlement contract deployed");
    Ok(Deployed { chain_id: config.chain_id, operator, settlement: *settlement.address(), weth, test_nft })
}

/// `text` with the endpoint's whole URL (and its path, which holds a provider's key)
/// replaced by its label.
fn scrub(text: &str, endpoint: &Endpoint) -> String {
    let url = endpoint.secret.expose_secret().trim_end_matches('/');
    let mut text = text.replace(url, &endpoint.shown);
    if let Ok(parsed) = url.parse::<reqwest::Url>()
        && parsed.path().len() > 1
    {
        text = text.replace(parsed.path(), "/[redacted]");
    }
    text
}

/// An endpoint as logs and errors name it: scheme, host and port only, since RPC
/// providers put the API key in the path or the query.
pub fn endpoint_label(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// A token id in decimal or `0x` hex.
pub fn parse_token_id(text: &str) -> Option<U256> {
    let text = text.trim();
    match text.strip_prefix("0x") {
        Some(hex) => U256::from_str_radix(hex, 16).ok(),
        None => U256::from_str_radix(text, 10).ok(),
    }
}

/// An amount of ETH (or WETH) in wei.
pub fn wei(amount: sothebais_shared::amount::Amount) -> U256 {
    U256::from(amount.wei())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts_lose_the_endpoints_key() {
        let url = "https://mainnet.example/v3/SECRETKEY";
        let endpoint = Endpoint {
            name: "primary",
            shown: "https://mainnet.example".into(),
            secret: url.to_owned().into(),
            provider: ProviderBuilder::new().connect_http(url.parse().expect("url")).erased(),
        };
        let text = scrub("error sending request for url (https://mainnet.example/v3/SECRETKEY)", &endpoint);
        assert!(!text.contains("SECRETKEY"), "{text}");
        assert!(!scrub("path /v3/SECRETKEY not found", &endpoint).contains("SECRETKEY"));
    }

    #[test]
    fn an_endpoint_is_named_without_its_key() {
        let url: reqwest::Url = "https://user:pw@mainnet.example/v3/SECRETKEY?token=T".parse().expect("url");
        assert_eq!(endpoint_label(&url), "https://mainnet.example");
        let local: reqwest::Url = "http://127.0.0.1:8545".parse().expect("url");
        assert_eq!(endpoint_label(&local), "http://127.0.0.1:8545");
    }

    #[test]
    fn token_ids_read_in_decimal_and_hex() {
        assert_eq!(parse_token_id("42"), Some(U256::from(42)));
        assert_eq!(parse_token_id("0x2a"), Some(U256::from(42)));
        assert_eq!(parse_token_id("forty-two"), None);
    }

    #[test]
    fn funds_cover_a_bid_only_with_balance_and_allowance_both() {
        let funds = Funds { balance: U256::from(10), allowance: U256::from(5) };
        assert!(funds.cover(U256::from(5)));
        assert!(!funds.cover(U256::from(6)));
    }
}
