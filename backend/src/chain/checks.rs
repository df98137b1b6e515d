//! The bid checks of `verification` (docs/chain.md), run before a bid reaches its
//! auction's writer, so a slow RPC delays only the bid being checked, never the
//! writer: `wallet` needs a live wallet link for the bidder's handle, `funds` also
//! WETH balance and allowance to the settlement contract covering the bid, read
//! within `ETH_CHECK_DEADLINE_MS`. A check that misses its deadline is decided by
//! the auction's `unverifiable` policy. The checks fail closed: when the auction's
//! policy cannot be read, the bid is refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::Address;
use sothebais_shared::auction::{BidSource, Unverifiable, Verification};
use uuid::Uuid;

use super::{Chain, siwe, wei};
use crate::auction::rules::{BidInput, BidderStanding, Offer};
use crate::storage::Storage;

/// What a check found, before the standing is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// No check asked for, or every check passed.
    Passed,
    NoWallet,
    Short,
    /// The funds (or the auction's policy) could not be read in time.
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

/// An auction's checks, fixed at its creation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Policy {
    verification: Verification,
    unverifiable: Unverifiable,
    /// The consignor's address, when `consignor` is one: a bidder whose linked
    /// wallet it is, is the seller (`SELLER_CANNOT_BID`).
    consignor_wallet: Option<Address>,
}

/// What the policy lookup found.
enum Lookup {
    Found(Policy),
    /// No such auction: its writer answers `NOT_FOUND`.
    Unknown,
    /// The database did not answer.
    Unread,
}

/// The checks, with each auction's policy remembered (it is fixed at creation).
#[derive(Debug)]
pub struct BidChecks {
    storage: Arc<dyn Storage>,
    chain: Option<Arc<Chain>>,
    deadline: Duration,
    policies: Mutex<HashMap<Uuid, Policy>>,
}

impl BidChecks {
    pub fn new(storage: Arc<dyn Storage>, chain: Option<Arc<Chain>>, deadline: Duration) -> BidChecks {
        BidChecks { storage, chain, deadline, policies: Mutex::new(HashMap::new()) }
    }

    async fn policy(&self, auction_id: Uuid) -> Lookup {
        if let Some(policy) =
            self.policies.lock().ok().and_then(|policies| policies.get(&auction_id).cloned())
        {
            return Lookup::Found(policy);
        }
        match self.storage.auction(auction_id).await {
            Ok(Some(record)) => {
                let settings = &record.core.settings;
                let policy = Policy {
                    verification: settings.verification,
                    unverifiable: settings.unverifiable,
                    consignor_wallet: settings.consignor.as_deref().and_then(|text| text.trim().parse().ok()),
                };
                if let Ok(mut policies) = self.policies.lock() {
                    policies.insert(auction_id, policy.clone());
                }
                Lookup::Found(policy)
            }
            Ok(None) => Lookup::Unknown,
            Err(error) => {
                tracing::warn!(%auction_id, %error, "the auction's checks could not be read");
                Lookup::Unread
            }
        }
    }

    /// The bidder's standing for this bid, the checks of its auction applied.
    pub async fn standing(
        &self,
        auction_id: Uuid,
        input: &BidInput,
        known: BidderStanding,
    ) -> BidderStanding {
        let policy = match self.policy(auction_id).await {
            Lookup::Found(policy) => policy,
            Lookup::Unknown => return known,
            // Fail closed: a database that does not answer must not switch checks off.
            Lookup::Unread => return standing(Finding::Unanswered, Unverifiable::Reject, known),
        };
        if policy.verification == Verification::None && policy.consignor_wallet.is_none() {
            return known;
        }
        let wallet = self.wallet(input).await;
        let mut known = known;
        if wallet.is_some() && wallet == policy.consignor_wallet {
            known.consignor = true;
        }
        if policy.verification == Verification::None {
            return known;
        }
        let finding = self.find(policy.verification, wallet, input.amount).await;
        metrics::counter!("chain_bid_checks_total", "finding" => finding_label(finding)).increment(1);
        if finding != Finding::Passed {
            tracing::info!(
                %auction_id,
                bidder = %input.bidder.id,
                ?finding,
                unverifiable = ?policy.unverifiable,
                "bid check"
            );
        }
        standing(finding, policy.unverifiable, known)
    }

    async fn find(&self, verification: Verification, wallet: Option<Address>, offer: Offer) -> Finding {
        let Some(address) = wallet else { return Finding::NoWallet };
        if verification != Verification::Funds {
            return Finding::Passed;
        }
        let Offer::Amount(amount) = offer else { return Finding::Passed };
        let Some(chain) = &self.chain else { return Finding::Unanswered };
        match tokio::time::timeout(self.deadline, chain.funds(address, Some(self.deadline))).await {
            Ok(Ok(funds)) if funds.cover(wei(amount)) => Finding::Passed,
            Ok(Ok(_)) => Finding::Short,
            Ok(Err(error)) => {
                tracing::warn!(%error, "funds check failed");
                Finding::Unanswered
            }
            Err(_) => Finding::Unanswered,
        }
    }

    /// The bidder's live linked wallet, by handle. The handle of a bid from X is the
    /// post's author, and operators relay bids as `x` or `admin`; a bid made with a
    /// bidder token (`http`) names its handle in a body its sender writes, so there
    /// the token's subject, the bidder id, is the handle looked up.
    async fn wallet(&self, input: &BidInput) -> Option<Address> {
        let identity = match input.source {
            BidSource::Http => input.bidder.id.as_str(),
            BidSource::X | BidSource::Admin => input.bidder.handle.as_deref()?,
        };
        let handle = siwe::normal_handle(identity)?;
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
