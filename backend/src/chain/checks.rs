//! The bid checks of `verification` (docs/chain.md), run before a bid reaches its
//! auction's writer, so a slow RPC delays only the bid being checked, never the
//! writer: `wallet` needs a live wallet link for the bidder's handle, `funds` also
//! WETH balance and allowance to the settlement contract covering the bid, read
//! within `ETH_CHECK_DEADLINE_MS`. A check that misses its deadline is decided by
//! the auction's `unverifiable` policy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::Address;
use sothebais_shared::auction::{Bidder, Unverifiable, Verification};
use uuid::Uuid;

use super::{Chain, siwe, wei};
use crate::auction::rules::{BidderStanding, Offer};
use crate::storage::Storage;

/// What a check found, before the standing is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// No check asked for, or every check passed.
    Passed,
    NoWallet,
    Short,
    /// The funds could not be read in time.
    Unanswered,
}

/// The standing a finding gives under a policy (pure).
pub fn standing(
    finding: Finding,
    unverifiable: Unverifiable,
    mut standing: BidderStanding,
) -> BidderStanding {
    match finding {
        Finding::Passed => {}
        Finding::NoWallet => standing.verified = Some(false),
        Finding::Short => standing.funds_sufficient = Some(false),
        Finding::Unanswered => {
            if unverifiable == Unverifiable::Reject {
                standing.funds_sufficient = Some(false);
            }
        }
    }
    standing
}

/// The checks, with each auction's policy remembered (it is fixed at creation).
#[derive(Debug)]
pub struct BidChecks {
    storage: Arc<dyn Storage>,
    chain: Option<Arc<Chain>>,
    deadline: Duration,
    policies: Mutex<HashMap<Uuid, (Verification, Unverifiable)>>,
}

impl BidChecks {
    pub fn new(storage: Arc<dyn Storage>, chain: Option<Arc<Chain>>, deadline: Duration) -> BidChecks {
        BidChecks { storage, chain, deadline, policies: Mutex::new(HashMap::new()) }
    }

    async fn policy(&self, auction_id: Uuid) -> (Verification, Unverifiable) {
        if let Some(policy) =
            self.policies.lock().ok().and_then(|policies| policies.get(&auction_id).copied())
        {
            return policy;
        }
        match self.storage.auction(auction_id).await {
            Ok(Some(record)) => {
                let policy = (record.core.settings.verification, record.core.settings.unverifiable);
                if let Ok(mut policies) = self.policies.lock() {
                    policies.insert(auction_id, policy);
                }
                policy
            }
            // An unknown auction: its writer answers NOT_FOUND. A storage error: the
            // writer meets it too and answers it.
            Ok(None) | Err(_) => (Verification::None, Unverifiable::Reject),
        }
    }

    /// The bidder's standing for this bid, the checks of its auction applied.
    pub async fn standing(
        &self,
        auction_id: Uuid,
        bidder: &Bidder,
        offer: Offer,
        known: BidderStanding,
    ) -> BidderStanding {
        let (verification, unverifiable) = self.policy(auction_id).await;
        if verification == Verification::None {
            return known;
        }
        let finding = self.find(verification, bidder, offer).await;
        metrics::counter!("chain_bid_checks_total", "finding" => finding_label(finding)).increment(1);
        if finding != Finding::Passed {
            tracing::info!(%auction_id, bidder = %bidder.id, ?finding, ?unverifiable, "bid check");
        }
        standing(finding, unverifiable, known)
    }

    async fn find(&self, verification: Verification, bidder: &Bidder, offer: Offer) -> Finding {
        let Some(address) = self.wallet(bidder).await else { return Finding::NoWallet };
        if verification != Verification::Funds {
            return Finding::Passed;
        }
        let Offer::Amount(amount) = offer else { return Finding::Passed };
        let Some(chain) = &self.chain else { return Finding::Unanswered };
        match tokio::time::timeout(self.deadline, chain.funds(address)).await {
            Ok(Ok(funds)) if funds.cover(wei(amount)) => Finding::Passed,
            Ok(Ok(_)) => Finding::Short,
            Ok(Err(error)) => {
                tracing::warn!(%error, "funds check failed");
                Finding::Unanswered
            }
            Err(_) => Finding::Unanswered,
        }
    }

    /// The bidder's live linked wallet, by handle.
    async fn wallet(&self, bidder: &Bidder) -> Option<Address> {
        let handle = siwe::normal_handle(bidder.handle.as_deref()?)?;
        let link = self.storage.wallet_link(&handle).await.ok()??;
        if link.revoked_at.is_some() {
            return None;
        }
        link.address.parse().ok()
    }
}

fn finding_label(finding: Finding) -> &'static str {
    match finding {
        Finding::Passed => "passed",
        Finding::NoWallet => "no_wallet",
        Finding::Short => "short",
        Finding::Unanswered => "unanswered",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unanswered_check_is_refused_or_accepted_by_the_policy() {
        let base = BidderStanding::default();
        assert_eq!(standing(Finding::Unanswered, Unverifiable::Reject, base).funds_sufficient, Some(false));
        assert_eq!(standing(Finding::Unanswered, Unverifiable::Accept, base), base);
    }

    #[test]
    fn a_missing_wallet_and_short_funds_give_their_own_standing() {
        let base = BidderStanding::default();
        assert_eq!(standing(Finding::NoWallet, Unverifiable::Accept, base).verified, Some(false));
        assert_eq!(standing(Finding::Short, Unverifiable::Accept, base).funds_sufficient, Some(false));
        assert_eq!(standing(Finding::Passed, Unverifiable::Reject, base), base);
    }
}
