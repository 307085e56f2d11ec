//! Backup policy rules: cron periods (presets or five fields) in an IANA time zone, retention
//! in `10h30m15s` form, and the slots a schedule runs at, DST included.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

mod words;

/// The presets the form offers: (label, cron).
pub const PRESETS: [(&str, &str); 4] = [
    ("Hourly", "0 * * * *"),
    ("Daily", "0 0 * * *"),
    ("Weekly", "0 0 * * 0"),
    ("Monthly", "0 0 1 * *"),
];

/// The schedule select's choice that keeps the typed cron period.
pub const CUSTOM: &str = "custom";

/// The pattern of the preset named `name` (`daily`, any case); `None` for `custom` or any
/// other word.
pub fn preset_pattern(name: &str) -> Option<&'static str> {
    PRESETS
        .iter()
        .find(|(label, _)| label.eq_ignore_ascii_case(name.trim()))
        .map(|(_, pattern)| *pattern)
}

/// The message SPEC gives for a bad cron period.
pub const BAD_CRON: &str = "expected a valid cron period";
pub const BAD_ZONE: &str = "expected an IANA time zone such as Europe/Berlin";
/// The message SPEC gives for a bad retention period.
pub const BAD_RETENTION: &str =
    "The retention period must follow the HMS format, for example: 10h30m15s, 48h5s or 360h";
/// The message SPEC gives when no namespace is chosen.
pub const NO_NAMESPACE: &str = "please specify include namespace to create backup";

/// A checked schedule: cron and time zone.
#[derive(Clone, Debug)]
pub struct Schedule {
    cron: Cron,
    pub pattern: String,
    pub zone: Tz,
}

impl Schedule {
    /// Parses a preset name (`hourly`, …) or a five-field cron, in an IANA zone.
    pub fn parse(cron: &str, zone: &str) -> Result<Schedule, &'static str> {
        let pattern = preset_pattern(cron).map_or_else(
            || cron.split_whitespace().collect::<Vec<_>>().join(" "),
            str::to_string,
        );
        if pattern.split(' ').count() != 5 || pattern.len() > 100 {
            return Err(BAD_CRON);
        }
        let parsed = Cron::from_str(&pattern).map_err(|_| BAD_CRON)?;
        let zone = parse_zone(zone).ok_or(BAD_ZONE)?;
        // A pattern that never fires (30 February) is as bad as one that does not parse.
        let schedule = Schedule {
            cron: parsed,
            pattern,
            zone,
        };
        schedule.next_after(Utc::now()).ok_or(BAD_CRON)?;
        Ok(schedule)
    }

    /// The first slot strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&after.with_timezone(&self.zone), false)
            .ok()
            .map(|slot| slot.with_timezone(&Utc))
    }

    /// The latest slot at or before `now`: what a run that is due now stands for (missed
    /// slots collapse into it).
    pub fn latest_at_or_before(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&now.with_timezone(&self.zone), true)
            .ok()
            .map(|slot| slot.with_timezone(&Utc))
    }

    /// The next `count` slots after `after`, in the schedule's zone.
    pub fn upcoming(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Tz>> {
        let mut slots = Vec::with_capacity(count);
        let mut from = after;
        while slots.len() < count {
            let Some(next) = self.next_after(from) else {
                break;
            };
            slots.push(next.with_timezone(&self.zone));
            from = next;
        }
        slots
    }

    /// The schedule in words ("At 02:30", "Every 15 minutes, between 09:00 and 17:59", …),
    /// without a closing full stop.
    pub fn describe(&self) -> String {
        words::describe(&self.pattern).unwrap_or_else(|| {
            let said = self.cron.describe();
            said.trim_end_matches('.').to_string()
        })
    }
}

/// An IANA zone name (`UTC` included).
pub fn parse_zone(name: &str) -> Option<Tz> {
    Tz::from_str(name.trim()).ok()
}

/// Parses `72h`, `10h30m15s`, `48h5s` or `360h` into seconds (at least one second).
pub fn parse_retention(text: &str) -> Result<i64, &'static str> {
    let text = text.trim();
    let mut total: i64 = 0;
    let mut number = String::new();
    let mut last_unit = 0;
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let (order, factor) = match c {
            'h' => (1, 3600),
            'm' => (2, 60),
            's' => (3, 1),
            _ => return Err(BAD_RETENTION),
        };
        if number.is_empty() || order <= last_unit || number.len() > 9 {
            return Err(BAD_RETENTION);
        }
        total += number.parse::<i64>().map_err(|_| BAD_RETENTION)? * factor;
        number.clear();
        last_unit = order;
    }
    if !number.is_empty() || total <= 0 {
        return Err(BAD_RETENTION);
    }
    Ok(total)
}

/// Seconds back in the `10h30m15s` form.
pub fn format_retention(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    let mut text = String::new();
    if h > 0 {
        text.push_str(&format!("{h}h"));
    }
    if m > 0 {
        text.push_str(&format!("{m}m"));
    }
    if s > 0 || text.is_empty() {
        text.push_str(&format!("{s}s"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, NaiveDate, TimeZone};

    #[test]
    fn retention_accepts_the_hms_forms_and_refuses_the_rest() {
        assert_eq!(parse_retention("72h"), Ok(72 * 3600));
        assert_eq!(parse_retention("10h30m15s"), Ok(10 * 3600 + 30 * 60 + 15));
        assert_eq!(parse_retention("48h5s"), Ok(48 * 3600 + 5));
        assert_eq!(parse_retention("720h"), Ok(720 * 3600));
        for bad in ["", "h", "10", "5m10h", "1d", "-5h", "10h 5m", "0h"] {
            assert_eq!(parse_retention(bad), Err(BAD_RETENTION), "{bad:?}");
        }
        assert_eq!(format_retention(10 * 3600 + 30 * 60 + 15), "10h30m15s");
        assert_eq!(format_retention(720 * 3600), "720h");
    }

    #[test]
    fn cron_accepts_presets_and_five_fields_only() {
        assert_eq!(
            Schedule::parse("daily", "UTC").unwrap().pattern,
            "0 0 * * *"
        );
        assert!(Schedule::parse("*/15 * * * *", "Europe/Berlin").is_ok());
        for bad in [
            "",
            "* * * *",
            "0 0 * * * *",
            "61 * * * *",
            "every day",
            "0 0 30 2 *",
        ] {
            assert_eq!(Schedule::parse(bad, "UTC").err(), Some(BAD_CRON), "{bad:?}");
        }
        assert!(Schedule::parse("0 0 * * *", "Mars/Olympus").is_err());
    }

    /// Every run of a daily 02:30 Europe/Berlin schedule from `from` to `to`, as local dates.
    fn local_days(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<NaiveDate> {
        let schedule = Schedule::parse("30 2 * * *", "Europe/Berlin").unwrap();
        let mut days = Vec::new();
        let mut at = from;
        while let Some(next) = schedule.next_after(at) {
            if next > to {
                break;
            }
            days.push(next.with_timezone(&schedule.zone).date_naive());
            at = next;
        }
        days
    }

    #[test]
    fn a_daily_berlin_schedule_runs_once_per_local_day_across_both_dst_changes() {
        for (from, to) in [
            // Spring forward: 02:30 does not exist on 29 March 2026.
            (
                Utc.with_ymd_and_hms(2026, 3, 27, 0, 0, 0).unwrap(),
                Utc.with_ymd_and_hms(2026, 3, 31, 23, 0, 0).unwrap(),
            ),
            // Fall back: 02:30 happens twice on 25 October 2026.
            (
                Utc.with_ymd_and_hms(2026, 10, 23, 0, 0, 0).unwrap(),
                Utc.with_ymd_and_hms(2026, 10, 27, 23, 0, 0).unwrap(),
            ),
        ] {
            let days = local_days(from, to);
            let mut unique = days.clone();
            unique.dedup();
            assert_eq!(days, unique, "one run per local day: {days:?}");
            assert_eq!(days.len(), 5, "{days:?}");
            assert!(
                days.windows(2)
                    .all(|w| w[1].ordinal() == w[0].ordinal() + 1)
            );
        }
    }

    #[test]
    fn a_due_policy_runs_its_latest_slot_once() {
        let schedule = Schedule::parse("0 * * * *", "UTC").unwrap();
        let now = Utc.with_ymd_and_hms(2026, 5, 1, 10, 42, 0).unwrap();
        assert_eq!(
            schedule.latest_at_or_before(now),
            Some(Utc.with_ymd_and_hms(2026, 5, 1, 10, 0, 0).unwrap())
        );
        assert_eq!(
            schedule.next_after(now),
            Some(Utc.with_ymd_and_hms(2026, 5, 1, 11, 0, 0).unwrap())
        );
    }
}
