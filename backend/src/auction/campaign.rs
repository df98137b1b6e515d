//! Campaigns: a campaign's lots laid out on its wall clock, one after another with
//! a gap (or all at once), across daylight-saving changes. Pure: time and ids are
//! passed in.

use chrono::{DateTime, Utc};
use sothebais_shared::amount::Amount;
use sothebais_shared::auction::{Campaign, CampaignLot, NewAuction, NewCampaign};
use uuid::Uuid;

use super::engine::EngineError;
use super::rules::{AuctionCore, millis};

/// Lays out a campaign's lots on its wall clock.
pub fn plan(
    new: &NewCampaign,
    default_zone: chrono_tz::Tz,
    id: Uuid,
    now: DateTime<Utc>,
    max_bid: Amount,
) -> Result<(Campaign, Vec<AuctionCore>), EngineError> {
    use sothebais_shared::time::{display_in, parse_timezone, wall_clock_to_utc};
    if new.name.trim().is_empty() {
        return Err(EngineError::Invalid { field: "name", message: "must not be empty".into() });
    }
    if new.lots.is_empty() {
        return Err(EngineError::Invalid {
            field: "lots",
            message: "a campaign needs at least one lot".into(),
        });
    }
    let zone = match &new.timezone {
        Some(name) => {
            parse_timezone(name).map_err(|message| EngineError::Invalid { field: "timezone", message })?
        }
        None => default_zone,
    };
    let gap = new.gap_secs.unwrap_or(10);
    let mut local_start = new.starts_at.local_in(zone);
    let mut lots = Vec::new();
    let mut cores = Vec::new();
    for (index, lot) in new.lots.iter().enumerate() {
        if lot.starts_at.is_some() || lot.campaign_id.is_some() {
            return Err(EngineError::Invalid {
                field: "lots",
                message: format!("lot {index}: starts_at and campaign_id come from the campaign"),
            });
        }
        let starts_at = wall_clock_to_utc(local_start, zone);
        let spec = NewAuction { starts_at: Some(starts_at), campaign_id: Some(id), ..lot.clone() };
        let core = AuctionCore::create(Uuid::now_v7(), &spec, max_bid).map_err(|error| {
            EngineError::Invalid { field: "lots", message: format!("lot {index}: {error}") }
        })?;
        lots.push(CampaignLot {
            index: index as u32,
            auction_id: core.id,
            title: core.title.clone(),
            starts_at,
            scheduled_end: core.scheduled_end.unwrap_or(starts_at),
            starts_at_local: display_in(starts_at, zone),
        });
        if !new.concurrent {
            local_start += chrono::Duration::seconds(i64::from(core.settings.duration_secs) + i64::from(gap));
        }
        cores.push(core);
    }
    let campaign = Campaign {
        id,
        name: new.name.trim().to_owned(),
        timezone: zone.name().to_owned(),
        starts_at_local: new.starts_at.local_in(zone),
        gap_secs: gap,
        character: new.character.clone(),
        concurrent: new.concurrent,
        lots,
        created_at: millis(now),
    };
    Ok((campaign, cores))
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, NaiveDateTime};
    use sothebais_shared::Amount;

    use super::*;

    fn local(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d).and_then(|date| date.and_hms_opt(h, min, 0)).expect("valid")
    }

    fn lot(title: &str, duration_secs: u32) -> NewAuction {
        NewAuction {
            title: title.into(),
            starting_price: Amount::from_eth(1),
            duration_secs: Some(duration_secs),
            ..NewAuction::default()
        }
    }

    fn campaign(starts_at: NaiveDateTime, lots: Vec<NewAuction>, gap_secs: u32) -> NewCampaign {
        NewCampaign {
            name: "Show".into(),
            timezone: Some("America/New_York".into()),
            starts_at: sothebais_shared::time::CampaignStart::WallClock(starts_at),
            gap_secs: Some(gap_secs),
            character: None,
            concurrent: false,
            lots,
        }
    }

    fn local_starts(new: &NewCampaign) -> Vec<String> {
        let (campaign, _) =
            plan(new, chrono_tz::America::New_York, Uuid::nil(), Utc::now(), Amount::from_eth(10_000))
                .expect("valid campaign");
        campaign.lots.into_iter().map(|lot| lot.starts_at_local).collect()
    }

    #[test]
    fn lots_follow_one_another_with_the_gap_on_the_wall_clock() {
        let new = campaign(local(2026, 6, 1, 20, 0), vec![lot("a", 90), lot("b", 90), lot("c", 60)], 10);
        assert_eq!(
            local_starts(&new),
            vec!["2026-06-01T20:00:00-04:00", "2026-06-01T20:01:40-04:00", "2026-06-01T20:03:20-04:00"]
        );
    }

    #[test]
    fn a_campaign_across_spring_forward_keeps_its_wall_clock_schedule() {
        // Lots of one hour from 00:30 on 2026-03-08: 02:00-03:00 does not exist that night.
        let new = campaign(local(2026, 3, 8, 0, 30), vec![lot("a", 3600), lot("b", 3600), lot("c", 3600)], 0);
        assert_eq!(
            local_starts(&new),
            vec!["2026-03-08T00:30:00-05:00", "2026-03-08T01:30:00-05:00", "2026-03-08T03:30:00-04:00"]
        );
    }

    #[test]
    fn a_campaign_across_fall_back_keeps_its_wall_clock_schedule() {
        // 01:00-02:00 happens twice on 2026-11-01; the schedule takes the first.
        let new =
            campaign(local(2026, 11, 1, 0, 30), vec![lot("a", 3600), lot("b", 3600), lot("c", 3600)], 0);
        assert_eq!(
            local_starts(&new),
            vec!["2026-11-01T00:30:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T02:30:00-05:00"]
        );
    }

    #[test]
    fn concurrent_lots_all_open_at_the_campaign_start() {
        let mut new = campaign(local(2026, 6, 1, 20, 0), vec![lot("a", 90), lot("b", 120)], 10);
        new.concurrent = true;
        assert_eq!(local_starts(&new), vec!["2026-06-01T20:00:00-04:00", "2026-06-01T20:00:00-04:00"]);
    }

    #[test]
    fn a_lot_that_brings_its_own_start_is_refused() {
        let mut with_start = lot("a", 90);
        with_start.starts_at = Some(Utc::now());
        let new = campaign(local(2026, 6, 1, 20, 0), vec![with_start], 10);
        let error =
            plan(&new, chrono_tz::America::New_York, Uuid::nil(), Utc::now(), Amount::from_eth(10_000))
                .expect_err("refused");
        assert!(matches!(error, EngineError::Invalid { field: "lots", .. }), "{error}");
    }
}
