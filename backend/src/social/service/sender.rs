//! The sender: posts what is stored, by priority, within the budget and the spend
//! limit, and the standings posts.

use super::*;

impl Social {
    /// Sends stored writes until `stop`.
    pub async fn send(self, stop: CancellationToken) -> anyhow::Result<()> {
        let mut sent: VecDeque<DateTime<Utc>> = VecDeque::new();
        loop {
            let pause = match self.send_round(&mut sent).await {
                Ok(pause) => pause,
                Err(error) => {
                    tracing::warn!(%error, "sending to X failed; trying again");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = self.handle.writes.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One pass over the pending writes; how long to wait before the next.
    async fn send_round(&self, sent: &mut VecDeque<DateTime<Utc>>) -> anyhow::Result<Duration> {
        // The budget's window runs on the role's clock (tests move it).
        let now = self.now();
        while sent.front().is_some_and(|at| now - *at > BUDGET_WINDOW) {
            sent.pop_front();
        }
        self.queue_standings().await?;
        let pending = self.storage.social_writes(Some(WriteState::Pending), None, 200).await?;
        let budget = self.runtime.reply_budget_per_15min() as usize;
        let mut left = budget.saturating_sub(sent.len());
        let spend = self.handle.client.spend().0;
        let spent_share = self.runtime.spend_limit_usd().map_or(0.0, |limit| spend / limit);
        let important = pending
            .iter()
            .filter(|write| !matches!(write.kind, WriteKind::Rejected | WriteKind::Answer))
            .count();
        // A quarter of the budget (at least one post) is kept for what matters more
        // than a rejection: announcements, accepted bids, outbid notices, results.
        // The last eighth of it is the announcements', results' and standings' alone,
        // so a busy lot never leaves the next one unannounced for the rest of the
        // window.
        let reserve = (budget / 4).max(1);
        let floor = budget / 8;
        for mut write in pending {
            // Past the spend limit only results go out; past 80 % rejections are only
            // batched and outbid notices stop. Short of budget, rejections are batched,
            // then accepted bids too (a standings post names them), and outbid notices
            // stop (standings give the high bid). The host's answers to questions are
            // the first to go when short.
            let short = left <= floor;
            let spent = spent_share >= 1.0 && write.kind != WriteKind::Result;
            let drop = spent
                || (spent_share >= 0.8 && matches!(write.kind, WriteKind::Outbid | WriteKind::Answer))
                || (write.kind == WriteKind::Answer && left <= reserve + important)
                || (write.kind == WriteKind::Outbid && short);
            let batch = (write.kind == WriteKind::Rejected
                && (spent_share >= 0.8 || left <= reserve + important))
                || (write.kind == WriteKind::Accepted && short);
            if drop || batch {
                write.state = if drop { WriteState::Dropped } else { WriteState::Batched };
                write.error = Some(if spent || spent_share >= 0.8 {
                    "spend limit".into()
                } else {
                    "reply budget".into()
                });
                self.storage.finish_write(&write).await?;
                continue;
            }
            if left == 0 {
                let Some(oldest) = sent.front() else { break };
                // Looked at again every second: the clock may move faster than time.
                let freed = ((*oldest + BUDGET_WINDOW) - now).to_std().unwrap_or(Duration::from_secs(1));
                return Ok(freed.min(Duration::from_secs(1)));
            }
            if let Some(until) = self.handle.client.blocked_until(Endpoint::Post) {
                return Ok((until - now).to_std().unwrap_or(Duration::from_secs(1)));
            }
            match self.send_one(&mut write).await {
                Ok(()) => {
                    if write.state == WriteState::Sent {
                        sent.push_back(self.now());
                        left = left.saturating_sub(1);
                    }
                }
                Err(XError::RateLimited { endpoint, reset_at }) => {
                    self.rate_limited(&XError::RateLimited { endpoint, reset_at }).await;
                    return Ok((reset_at - Utc::now()).to_std().unwrap_or(Duration::from_secs(1)));
                }
                Err(error) => {
                    write.attempts += 1;
                    write.error = Some(error.to_string());
                    if write.attempts >= 8 {
                        write.state = WriteState::Dropped;
                        self.event(
                            EventType::SocialReplyFailed,
                            &reply_event(&write, Some(error.to_string())),
                        )
                        .await;
                    }
                    self.storage.finish_write(&write).await?;
                    return Ok(Duration::from_secs(1 << write.attempts.clamp(0, 5)));
                }
            }
        }
        Ok(Duration::from_secs(1))
    }

    async fn send_one(&self, write: &mut SocialWrite) -> Result<(), XError> {
        let lot = match write.auction_id {
            Some(id) => self.storage.social_lot(id).await.ok().flatten(),
            None => None,
        };
        // Results and standings answer the lot's announcement, once it has an id.
        let in_reply_to = match write.kind {
            WriteKind::Result | WriteKind::Standings => {
                lot.as_ref().and_then(|lot| lot.post_id.clone()).filter(|id| !id.starts_with("dry-run-"))
            }
            _ => write.in_reply_to.clone(),
        };
        // X refuses a text the account has posted before. A resend of this write
        // (a crash between sending and storing) was sent already; another write
        // that happens to say the same (a viewer who posts the same bid twice gets
        // the same answer twice) is told apart by a number and sent.
        let original = write.text.clone();
        let mut repeat = 1;
        let posted = loop {
            let posted = self.handle.client.post(&write.text, in_reply_to.as_deref()).await?;
            if posted != Posted::Duplicate || repeat >= 5 {
                break posted;
            }
            let others = self.storage.sent_keys_with_text(&write.text).await.unwrap_or_default();
            if others.iter().all(|key| *key == write.key) {
                break posted;
            }
            repeat += 1;
            write.text = words::fit(format!("{original} ({repeat})"));
        };
        let cost = if self.handle.client.dry_run() {
            0.0
        } else if xapi::has_url(&write.text) {
            xapi::Resource::PostCreatedWithUrl.price_usd()
        } else {
            xapi::Resource::PostCreated.price_usd()
        };
        match posted {
            Posted::Created(id) => {
                write.state = WriteState::Sent;
                write.post_id = Some(id.clone());
                if let Some(auction_id) = write.auction_id {
                    self.handle.add_lot_spend(auction_id, cost);
                }
                if write.kind == WriteKind::Announcement
                    && let Some(lot) = lot
                {
                    let _ = self.storage.update_lot(lot.auction_id, &LotChange::Post(id.clone())).await;
                    self.event(
                        EventType::SocialAnnounced,
                        &SocialAnnounced { auction_id: lot.auction_id, post_id: id },
                    )
                    .await;
                }
            }
            Posted::Duplicate => {
                write.state = WriteState::Sent;
                tracing::info!(key = %write.key, "X says this was posted before; counted as sent");
            }
            Posted::NotRepliable => {
                write.state = WriteState::NotRepliable;
                write.error = Some("not_repliable".into());
            }
        }
        write.sent_at = Some(Utc::now());
        write.attempts += 1;
        if let Err(error) = self.storage.finish_write(write).await {
            tracing::warn!(%error, key = %write.key, "sent, but its state was not stored");
        }
        metrics::counter!("x_writes_total", "kind" => write.kind.as_str(), "state" => write.state.as_str())
            .increment(1);
        let failed = write.state == WriteState::NotRepliable;
        let event_type = if failed { EventType::SocialReplyFailed } else { EventType::SocialReplySent };
        self.event(event_type, &reply_event(write, failed.then(|| "not_repliable".to_owned()))).await;
        tracing::info!(key = %write.key, kind = write.kind.as_str(), state = write.state.as_str(), "X write done");
        Ok(())
    }

    /// Queues a standings post for each lot with refused or batched replies to
    /// acknowledge: an open lot's at most every 20 s, a closed lot's at once, so a
    /// bidder X would not let the show answer hears of their bid even when the lot
    /// closes within 20 s of it.
    async fn queue_standings(&self) -> anyhow::Result<()> {
        let now = self.now();
        let mut owed_by_lot: BTreeMap<Uuid, Vec<SocialWrite>> = BTreeMap::new();
        for write in self.storage.owed_writes(500).await? {
            if let Some(auction_id) = write.auction_id {
                owed_by_lot.entry(auction_id).or_default().push(write);
            }
        }
        for (auction_id, owed) in owed_by_lot {
            let Some(lot) = self.storage.social_lot(auction_id).await? else { continue };
            if lot.open && now - lot.standings_at < STANDINGS_EVERY {
                continue;
            }
            let Some(record) = self.storage.auction(lot.auction_id).await? else { continue };
            let auction = record.core.view_at(millis(now));
            let mut accepted = Vec::new();
            let (mut refused, mut under_minimum) = (0, 0);
            for write in &owed {
                let post_id = write.key.strip_prefix("reply:").unwrap_or_default();
                let post = self.storage.social_post(post_id).await?;
                let outcome: serde_json::Value = post
                    .as_ref()
                    .and_then(|post| post.outcome.as_deref())
                    .and_then(|text| serde_json::from_str(text).ok())
                    .unwrap_or_default();
                match (outcome["status"].as_str(), outcome["reason"].as_str()) {
                    (Some("accepted"), _) => accepted
                        .push(post.and_then(|post| post.author_handle).unwrap_or_else(|| "someone".into())),
                    (_, Some("BELOW_MIN_INCREMENT" | "BELOW_STARTING_PRICE")) => {
                        refused += 1;
                        under_minimum += 1;
                    }
                    _ => refused += 1,
                }
            }
            let name = LotName { number: lot.number, title: &lot.title };
            let text = self.handle.wording.standings(
                &Standings { lot: name, auction: &auction, accepted, refused, under_minimum },
                now,
            );
            let key = format!("standings:{}:{}", lot.auction_id, now.timestamp_millis());
            self.queue(self.write(key, WriteKind::Standings, 2, lot.auction_id, None, text)).await;
            for mut write in owed {
                write.error = Some(ACKNOWLEDGED.into());
                self.storage.finish_write(&write).await?;
            }
            self.storage.update_lot(lot.auction_id, &LotChange::StandingsAt(now)).await?;
        }
        Ok(())
    }
}

fn reply_event(write: &SocialWrite, error: Option<String>) -> SocialReply {
    SocialReply {
        in_reply_to: write.in_reply_to.clone(),
        reply_id: write.post_id.clone(),
        auction_id: write.auction_id,
        kind: write.kind.as_str().to_owned(),
        text: write.text.clone(),
        standings: write.kind == WriteKind::Standings,
        error,
    }
}
