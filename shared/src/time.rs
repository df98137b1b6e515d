//! Time: stored and sent in UTC, shown in a timezone (default `America/New_York`).

use chrono::{DateTime, Datelike as _, FixedOffset, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// The timezone used for campaigns and display when none is configured.
pub const DEFAULT_TIMEZONE: &str = "America/New_York";

/// Milliseconds since the Unix epoch, as event envelopes carry them.
pub fn unix_millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// The instant `millis` after the Unix epoch, or `None` when out of range.
pub fn from_unix_millis(millis: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(millis)
}

/// Parses an IANA timezone name such as `Europe/Paris`.
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>()
        .map_err(|_| format!("unknown timezone {name:?}: use an IANA name such as {DEFAULT_TIMEZONE}"))
}

/// The UTC instant of a wall-clock time in `zone`.
///
/// Wall-clock times that do not exist (skipped by a spring-forward change) move
/// forward by the size of the gap, as a clock on the wall would read after the jump;
/// times that happen twice (a fall-back change) take the first occurrence.
pub fn wall_clock_to_utc(local: NaiveDateTime, zone: Tz) -> DateTime<Utc> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(at) => at.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // Read the skipped time with the offset in force before the jump, as a
            // wall clock that was not yet moved forward would: 02:30 EST is 03:30 EDT.
            let day_before = Utc.from_utc_datetime(&(local - chrono::Duration::days(1)));
            let offset_before = zone.offset_from_utc_datetime(&day_before.naive_utc()).fix();
            Utc.from_utc_datetime(
                &(local - chrono::Duration::seconds(i64::from(offset_before.local_minus_utc()))),
            )
        }
    }
}

/// `at` written in `zone`, RFC 3339 with the zone's offset.
pub fn display_in(at: DateTime<Utc>, zone: Tz) -> String {
    at.with_timezone(&zone).to_rfc3339()
}

/// The years operator input may name: far enough for any show, near enough that
/// every date and duration computed from them stays in range.
pub const YEARS: std::ops::RangeInclusive<i32> = 2000..=9999;

/// Checks an instant given as input against [`YEARS`].
pub fn check_year(at: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if YEARS.contains(&at.year()) {
        Ok(at)
    } else {
        Err(format!("{} is outside the years {} to {}", at.to_rfc3339(), YEARS.start(), YEARS.end()))
    }
}

/// When a campaign starts: a wall-clock time in the campaign's timezone
/// (`2026-12-02T20:00:00`), or an instant with any offset (`2026-12-02T20:00:00-05:00`,
/// `…Z`), which is read on the campaign's wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignStart {
    WallClock(NaiveDateTime),
    At(DateTime<FixedOffset>),
}

impl CampaignStart {
    /// The start on the wall clock of `zone`.
    pub fn local_in(self, zone: Tz) -> NaiveDateTime {
        match self {
            CampaignStart::WallClock(local) => local,
            CampaignStart::At(at) => at.with_timezone(&zone).naive_local(),
        }
    }
}

impl std::str::FromStr for CampaignStart {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let parsed = DateTime::parse_from_rfc3339(text).map(CampaignStart::At).or_else(|_| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M"))
                .map(CampaignStart::WallClock)
        });
        let start = parsed.map_err(|_| {
            format!(
                "{text:?} is not a start time: give a wall-clock time in the campaign's timezone \
                 (2026-12-02T20:00:00) or an RFC 3339 time with an offset (2026-12-02T20:00:00-05:00)"
            )
        })?;
        let year = match start {
            CampaignStart::WallClock(local) => local.year(),
            CampaignStart::At(at) => at.year(),
        };
        if !YEARS.contains(&year) {
            return Err(format!("{text:?} is outside the years {} to {}", YEARS.start(), YEARS.end()));
        }
        Ok(start)
    }
}

impl std::fmt::Display for CampaignStart {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CampaignStart::WallClock(local) => write!(formatter, "{}", local.format("%Y-%m-%dT%H:%M:%S")),
            CampaignStart::At(at) => formatter.write_str(&at.to_rfc3339()),
        }
    }
}

impl serde::Serialize for CampaignStart {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for CampaignStart {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for CampaignStart {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CampaignStart".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A wall-clock time in the campaign's timezone, or an RFC 3339 time with any offset.",
            "examples": ["2026-12-02T20:00:00", "2026-12-02T20:00:00-05:00"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_campaign_starts_on_a_wall_clock_or_at_an_instant_with_any_offset() {
        let zone: Tz = "America/New_York".parse().expect("zone");
        let wall: CampaignStart = "2026-12-02T20:00:00".parse().expect("wall clock");
        let offset: CampaignStart = "2026-12-02T20:00:00-05:00".parse().expect("offset");
        let utc: CampaignStart = "2026-12-03T01:00:00Z".parse().expect("UTC");
        let paris: CampaignStart = "2026-12-03T02:00:00+01:00".parse().expect("another offset");
        for start in [wall, offset, utc, paris] {
            assert_eq!(start.local_in(zone).to_string(), "2026-12-02 20:00:00", "{start}");
        }
        assert_eq!(
            "2026-12-02T20:00".parse::<CampaignStart>().map(|start| start.local_in(zone)),
            Ok(wall.local_in(zone))
        );
        let error = "next tuesday".parse::<CampaignStart>().expect_err("not a time");
        assert!(error.contains("wall-clock time") && error.contains("RFC 3339"), "{error}");
        assert!("+275000-01-01T00:00:00".parse::<CampaignStart>().is_err());
        assert!(
            "0001-01-01T00:00:00Z"
                .parse::<CampaignStart>()
                .expect_err("too early")
                .contains("outside the years")
        );
    }
    use chrono::NaiveDate;

    fn local(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d).and_then(|date| date.and_hms_opt(h, min, 0)).expect("valid date")
    }

    #[test]
    fn ordinary_wall_clock_maps_to_its_utc_instant() {
        let zone = parse_timezone(DEFAULT_TIMEZONE).expect("known zone");
        let at = wall_clock_to_utc(local(2026, 1, 15, 20, 0), zone);
        assert_eq!(at.to_rfc3339(), "2026-01-16T01:00:00+00:00");
    }

    #[test]
    fn time_skipped_by_spring_forward_moves_past_the_gap() {
        // 2026-03-08 02:30 does not exist in New York: clocks jump 02:00 -> 03:00.
        let zone = parse_timezone(DEFAULT_TIMEZONE).expect("known zone");
        let at = wall_clock_to_utc(local(2026, 3, 8, 2, 30), zone);
        assert_eq!(display_in(at, zone), "2026-03-08T03:30:00-04:00");
    }

    #[test]
    fn time_repeated_by_fall_back_takes_the_first_occurrence() {
        // 2026-11-01 01:30 happens twice in New York; the first is still EDT.
        let zone = parse_timezone(DEFAULT_TIMEZONE).expect("known zone");
        let at = wall_clock_to_utc(local(2026, 11, 1, 1, 30), zone);
        assert_eq!(display_in(at, zone), "2026-11-01T01:30:00-04:00");
    }

    #[test]
    fn unknown_timezone_is_refused_with_a_hint() {
        let error = parse_timezone("Mars/Olympus").expect_err("unknown");
        assert!(error.contains("America/New_York"), "{error}");
    }
}
