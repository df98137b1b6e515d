//! The contracts, bound from the artifacts `contracts/compile.mjs` writes (ABI and
//! bytecode compiled offline by the pinned npm `solc`, committed in `contracts/out/`).
//! `TestWETH` and `TestNFT` exist for local chains (tests, demos); the show uses the
//! chain's real WETH and the consignor's real NFT, through the same calls.

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    SothebaisSettlement,
    "../contracts/out/SothebaisSettlement.json"
);

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    TestWETH,
    "../contracts/out/TestWETH.json"
);

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    TestNFT,
    "../contracts/out/TestNFT.json"
);

/// An auction id as the contract keys settlements: the UUID's 16 bytes, left-aligned.
pub fn auction_key(id: uuid::Uuid) -> alloy::primitives::FixedBytes<32> {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(id.as_bytes());
    alloy::primitives::FixedBytes(key)
}
