//! The lot follower: announcements, outbid notices and results, from `auction:*`
//! events.

use super::*;

impl Social {
    async fn lot_number(&self, auction: &Auction) -> Option<u32> {
        let campaign = self.storage.campaign(auction.campaign_id?).await.ok().flatten()?;
        campaign.lots.iter().find(|lot| lot.auction_id == auction.id).map(|lot| lot.index + 1)
    }

    /// Records an opened lot and queues its announcement (once: the key is the lot).
    async fn announce(&self, auction: &Auction) -> anyhow::Result<()> {
        let account_handle = self.account().await.map(|account| account.handle).unwrap_or_default();
        let existing = self.storage.social_lot(auction.id).await?;
        let lot = SocialLot {
            auction_id: auction.id,
            number: self.lot_number(auction).await,
            title: auction.title.clone(),
            post_id: existing.as_ref().and_then(|lot| lot.post_id.clone()),
            since_id: existing.as_ref().and_then(|lot| lot.since_id.clone()),
            open: true,
            high_post_id: existing.as_ref().and_then(|lot| lot.high_post_id.clone()),
            high_bidder: existing.as_ref().and_then(|lot| lot.high_bidder.clone()),
            standings_at: existing.as_ref().map_or(self.now(), |lot| lot.standings_at),
        };
        self.storage.save_lot(&lot).await?;
        let name = LotName { number: lot.number, title: &lot.title };
        let text = self.handle.wording.announcement(&name, auction, &account_handle);
        self.queue(self.write(
            format!("announce:{}", auction.id),
            WriteKind::Announcement,
            0,
            auction.id,
            None,
            text,
        ))
        .await;
        Ok(())
    }

    /// Lots that opened while the role was not following (before it started, or
    /// before its consumer group existed) are announced now.
    pub(super) async fn catch_up(&self) -> anyhow::Result<()> {
        let known: Vec<Uuid> =
            self.storage.social_lots(false).await?.iter().map(|lot| lot.auction_id).collect();
        let now = millis(self.now());
        let records = self
            .storage
            .auctions(&AuctionFilter { phases: vec![Phase::Open], campaign_id: None, limit: 100 })
            .await?;
        for record in records {
            let auction = record.core.view_at(now);
            if auction.state == AuctionState::Open && !known.contains(&auction.id) {
                self.announce(&auction).await?;
            }
        }
        Ok(())
    }

    async fn on_event(&self, event: &Envelope) -> anyhow::Result<()> {
        match event.event_type {
            EventType::AuctionStart => {
                let AuctionSnapshot { auction } = event.decode()?;
                self.announce(&auction).await?;
            }
            EventType::AuctionBidAccepted => {
                let BidEvent { bid, auction, .. } = event.decode()?;
                let Some(lot) = self.storage.social_lot(bid.auction_id).await? else { return Ok(()) };
                if let (Some(previous_post), Some(previous_bidder), Some(auction)) =
                    (&lot.high_post_id, &lot.high_bidder, auction.as_ref())
                    && *previous_bidder != bid.bidder.id
                {
                    let minute = bid.created_at.timestamp() / OUTBID_EVERY_SECS;
                    let post = self.storage.social_post(previous_post).await?;
                    let reply_to = post.as_ref().map_or_else(|| previous_post.clone(), reply_target);
                    let name =
                        post.and_then(|post| post.author_handle).unwrap_or_else(|| previous_bidder.clone());
                    let lot_name = LotName { number: lot.number, title: &lot.title };
                    let text = self.handle.wording.outbid(&name, &lot_name, auction);
                    self.queue(self.write(
                        format!("outbid:{}:{previous_bidder}:{minute}", bid.auction_id),
                        WriteKind::Outbid,
                        2,
                        bid.auction_id,
                        Some(reply_to),
                        text,
                    ))
                    .await;
                }
                let post = if bid.source == BidSource::X { bid.source_ref.clone() } else { None };
                self.storage
                    .update_lot(lot.auction_id, &LotChange::High { post, bidder: bid.bidder.id.clone() })
                    .await?;
            }
            EventType::AuctionEnd | EventType::AuctionCancelled => {
                let ended = event.event_type == EventType::AuctionEnd;
                let auction = if ended {
                    event.decode::<AuctionSnapshot>()?.auction
                } else {
                    event.decode::<AuctionCancelled>()?.auction
                };
                let Some(lot) = self.storage.social_lot(auction.id).await? else { return Ok(()) };
                let name = LotName { number: lot.number, title: &lot.title };
                let text = if ended {
                    self.handle.wording.result(&name, &auction)
                } else {
                    self.handle.wording.cancelled(&name)
                };
                let key = format!("result:{}", auction.id);
                self.queue(self.write(key, WriteKind::Result, 0, auction.id, None, text)).await;
                self.storage.update_lot(lot.auction_id, &LotChange::Closed).await?;
            }
            EventType::AgentMessage => {
                // The host answered a post: posted once, as the reply to it.
                let message: AgentMessage = event.decode()?;
                if let (Channel::X, Some(post)) = (message.channel, message.in_reply_to) {
                    let key = format!("reply:{post}");
                    self.queue(self.write(key, WriteKind::Answer, 3, None, Some(post), message.text)).await;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The lot follower, as an event consumer (`social`) of `auction:*`.
#[derive(Debug)]
pub struct LotFollower {
    social: Social,
    patterns: Vec<TypePattern>,
}

impl LotFollower {
    pub fn new(social: Social) -> LotFollower {
        let patterns =
            ["auction:start", "auction:bid:accepted", "auction:end", "auction:cancelled", "agent:message"]
                .iter()
                .filter_map(|pattern| pattern.parse().ok())
                .collect();
        LotFollower { social, patterns }
    }
}

#[async_trait]
impl Consumer for LotFollower {
    fn name(&self) -> &str {
        "social"
    }

    fn patterns(&self) -> &[TypePattern] {
        &self.patterns
    }

    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        self.social.on_event(event).await
    }
}
