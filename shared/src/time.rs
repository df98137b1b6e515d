//! Time: stored and sent in UTC, shown in a timezone (default `America/New_York`).

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
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

#[cfg(test)]
mod tests {
    use super::*;
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
