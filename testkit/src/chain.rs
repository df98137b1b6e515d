//! A real local chain for tests: `anvil` (from the npm package
//! `@foundry-rs/anvil-linux-amd64`, installed into `contracts/node_modules` by
//! `scripts/test`) on a free port, accounts funded with `anvil_setBalance`, and the
//! test tokens and the settlement contract deployed with the backend's own
//! `sothebais_backend::chain::deploy`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use secrecy::SecretString;
use sothebais_backend::chain::contracts::{TestNFT, TestWETH};
use sothebais_backend::chain::{DeployRequest, Deployed};
use sothebais_backend::config::ChainConfig;

/// The chain id the tests' anvil runs with (anvil's own default).
pub const CHAIN_ID: u64 = 31337;

/// The anvil binary: `SOTHEBAIS_ANVIL`, else `contracts/node_modules/.bin/anvil`.
pub fn anvil_binary() -> PathBuf {
    if let Ok(path) = std::env::var("SOTHEBAIS_ANVIL") {
        return PathBuf::from(path);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    root.join("contracts/node_modules/.bin/anvil")
}

/// An anvil process; killed when dropped.
#[derive(Debug)]
pub struct Anvil {
    child: Option<Child>,
    pub port: u16,
}

impl Anvil {
    /// Starts anvil on a free port and waits until it answers.
    pub async fn start() -> Anvil {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free port")
            .port();
        let mut anvil = Anvil { child: None, port };
        anvil.run().await;
        anvil
    }

    async fn run(&mut self) {
        let binary = anvil_binary();
        let child = Command::new(&binary)
            .args(["--port", &self.port.to_string(), "--chain-id", &CHAIN_ID.to_string(), "--silent"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "starting {} ({error}); `npm ci --prefix contracts` installs it (scripts/test does)",
                    binary.display()
                )
            });
        self.child = Some(child);
        let provider = self.provider();
        let deadline = Instant::now() + Duration::from_secs(20);
        while provider.get_chain_id().await.is_err() {
            // Exited (its port taken meanwhile, say): never talk to another node there.
            let exited = self.child.as_mut().and_then(|child| child.try_wait().ok().flatten());
            assert!(exited.is_none(), "anvil exited on port {}: {exited:?}", self.port);
            assert!(Instant::now() < deadline, "anvil did not answer on port {}", self.port);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A provider without a wallet, for reads and anvil's own methods.
    pub fn provider(&self) -> DynProvider {
        ProviderBuilder::new().connect_http(self.url().parse().expect("url")).erased()
    }

    /// A provider that signs with `signer`.
    pub fn wallet(&self, signer: &PrivateKeySigner) -> DynProvider {
        ProviderBuilder::new().wallet(signer.clone()).connect_http(self.url().parse().expect("url")).erased()
    }

    /// A new account holding `eth` ether.
    pub async fn account(&self, eth: u64) -> PrivateKeySigner {
        let signer = PrivateKeySigner::random();
        let wei = U256::from(eth) * U256::from(10u64).pow(U256::from(18));
        let () = self
            .provider()
            .raw_request("anvil_setBalance".into(), (signer.address(), wei))
            .await
            .expect("anvil_setBalance");
        signer
    }

    /// Stops the node (an RPC that no longer answers).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A chain with the test tokens and the settlement contract, and the backend's
/// settings for it.
#[derive(Debug)]
pub struct ChainFixture {
    pub anvil: Anvil,
    pub operator: PrivateKeySigner,
    pub deployed: Deployed,
    pub config: ChainConfig,
}

/// One wei-per-ether.
pub fn eth(amount: f64) -> U256 {
    U256::from((amount * 1e6).round() as u64) * U256::from(10u64).pow(U256::from(12))
}

impl ChainFixture {
    pub async fn start() -> ChainFixture {
        let anvil = Anvil::start().await;
        let operator = anvil.account(100).await;
        let mut config = ChainConfig {
            rpc_url: Some(SecretString::from(anvil.url())),
            rpc_fallback_url: None,
            chain_id: CHAIN_ID,
            rpc_timeout: Duration::from_secs(2),
            check_deadline: Duration::from_millis(500),
            cache_ttl: Duration::from_secs(3),
            operator_key: Some(SecretString::from(alloy::hex::encode(operator.to_bytes()))),
            weth: None,
            settlement: None,
            domain: None,
        };
        let deployed = sothebais_backend::chain::deploy(
            &config,
            &DeployRequest { test_tokens: true, ..DeployRequest::default() },
        )
        .await
        .expect("deploy the test tokens and the settlement contract");
        config.weth = Some(deployed.weth);
        config.settlement = Some(deployed.settlement);
        ChainFixture { anvil, operator, deployed, config }
    }

    /// The backend settings (environment names) for this chain.
    pub fn settings(&self) -> Vec<(String, String)> {
        vec![
            ("ETH_RPC_URL".into(), self.anvil.url()),
            ("ETH_CHAIN_ID".into(), CHAIN_ID.to_string()),
            ("ETH_OPERATOR_KEY".into(), alloy::hex::encode(self.operator.to_bytes())),
            ("ETH_WETH_ADDRESS".into(), self.deployed.weth.to_checksum(None)),
            ("ETH_SETTLEMENT_ADDRESS".into(), self.deployed.settlement.to_checksum(None)),
        ]
    }

    pub fn nft(&self) -> Address {
        self.deployed.test_nft.expect("TestNFT deployed")
    }

    /// Mints `token` to `owner`, approving the settlement contract when `approve`.
    pub async fn mint(&self, owner: &PrivateKeySigner, token: u64, approve: bool) {
        let nft = TestNFT::new(self.nft(), self.anvil.wallet(owner));
        nft.mint(owner.address(), U256::from(token))
            .send()
            .await
            .expect("mint")
            .get_receipt()
            .await
            .expect("mined");
        if approve {
            nft.approve(self.deployed.settlement, U256::from(token))
                .send()
                .await
                .expect("approve")
                .get_receipt()
                .await
                .expect("mined");
        }
    }

    /// Wraps `deposit` ether into WETH for `owner` and allows the settlement contract
    /// `allowance`.
    pub async fn fund(&self, owner: &PrivateKeySigner, deposit: U256, allowance: U256) {
        let weth = TestWETH::new(self.deployed.weth, self.anvil.wallet(owner));
        if !deposit.is_zero() {
            weth.deposit().value(deposit).send().await.expect("deposit").get_receipt().await.expect("mined");
        }
        weth.approve(self.deployed.settlement, allowance)
            .send()
            .await
            .expect("approve")
            .get_receipt()
            .await
            .expect("mined");
    }

    pub async fn weth_balance(&self, owner: Address) -> U256 {
        TestWETH::new(self.deployed.weth, self.anvil.provider())
            .balanceOf(owner)
            .call()
            .await
            .expect("balanceOf")
    }

    pub async fn owner_of(&self, token: u64) -> Address {
        TestNFT::new(self.nft(), self.anvil.provider())
            .ownerOf(U256::from(token))
            .call()
            .await
            .expect("ownerOf")
    }
}
