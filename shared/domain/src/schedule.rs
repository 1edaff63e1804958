//! Cron schedules of `schedule` triggers.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// A parsed cron pattern (5 fields, or 6 with seconds first) in an IANA time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    tz: Tz,
}

impl CronSchedule {
    pub fn parse(pattern: &str, timezone: &str) -> Result<CronSchedule, String> {
        let tz = Tz::from_str(timezone).map_err(|_| format!("unknown time zone {timezone:?}"))?;
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(pattern)
            .map_err(|e| format!("invalid cron pattern {pattern:?}: {e}"))?;
        Ok(CronSchedule { cron, tz })
    }

    /// The first occurrence strictly after `after_ms` (epoch milliseconds), if any.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let after: DateTime<Utc> = Utc.timestamp_millis_opt(after_ms).single()?;
        let local = after.with_timezone(&self.tz);
        self.cron.find_next_occurrence(&local, false).ok().map(|t| t.timestamp_millis())
    }

    /// Occurrences in `(from_ms, to_ms]`, at most `max`, oldest first.
    pub fn due_between(&self, from_ms: i64, to_ms: i64, max: usize) -> Vec<i64> {
        let mut due = Vec::new();
        let mut cursor = from_ms;
        while due.len() < max {
            match self.next_after(cursor) {
                Some(t) if t <= to_ms => {
                    due.push(t);
                    cursor = t;
                }
                _ => break,
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn parses_and_refuses() {
        assert!(CronSchedule::parse("*/5 * * * *", "UTC").is_ok());
        assert!(CronSchedule::parse("0 */5 * * * *", "Europe/Paris").is_ok());
        assert!(CronSchedule::parse("not cron", "UTC").is_err());
        assert!(CronSchedule::parse("* * * * *", "Mars/Olympus").is_err());
    }

    #[test]
    fn finds_occurrences_in_the_time_zone() {
        let daily_9am_paris = CronSchedule::parse("0 9 * * *", "Europe/Paris").unwrap();
        // 09:00 in Paris in winter is 08:00 UTC.
        assert_eq!(daily_9am_paris.next_after(ms("2026-01-10T07:00:00Z")), Some(ms("2026-01-10T08:00:00Z")));
        let every_15 = CronSchedule::parse("*/15 * * * *", "UTC").unwrap();
        let due = every_15.due_between(ms("2026-01-10T10:00:00Z"), ms("2026-01-10T11:00:00Z"), 10);
        assert_eq!(due.len(), 4);
        assert_eq!(due[0], ms("2026-01-10T10:15:00Z"));
    }
}
