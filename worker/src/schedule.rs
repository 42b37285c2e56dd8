//! The schedule of a job's ticks for `apalis-cron`: every multiple of an interval since the Unix
//! epoch. Cron expressions cannot say "every 90 seconds"; this can, and every replica computes
//! the same instants.

use std::time::Duration;

use apalis_cron::{Schedule, Tick as CronTick};
use chrono::{DateTime, Utc};
use imark_core::jobs::Tick;

/// Fires at each multiple of `interval` since the Unix epoch, in UTC.
#[derive(Debug, Clone)]
pub struct Every {
    interval: Duration,
    last: Option<Tick>,
}

impl Every {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
        }
    }

    /// The first tick after `now`, and never the same tick twice: a timer firing a little
    /// early must not schedule the tick it is firing for again.
    fn next_after(&mut self, now: DateTime<Utc>) -> Tick {
        let mut next = Tick::next(self.interval, now);
        if let Some(last) = self.last
            && next <= last
        {
            next = last.following(self.interval);
        }
        self.last = Some(next);
        next
    }
}

impl Schedule<Utc> for Every {
    fn next_tick(&mut self, _: &Utc) -> Option<CronTick<Utc>> {
        let next = self.next_after(Utc::now());
        u64::try_from(next.unix()).ok().map(CronTick::new)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn ticks_fall_on_multiples_of_the_interval() {
        let mut every = Every::new(Duration::from_secs(300));

        assert_eq!(
            every.next_after(at("2026-12-03T13:41:07Z")).at(),
            at("2026-12-03T13:45:00Z")
        );
        assert_eq!(
            every.next_after(at("2026-12-03T13:45:00.002Z")).at(),
            at("2026-12-03T13:50:00Z")
        );
    }

    #[test]
    fn a_timer_firing_early_does_not_repeat_the_tick() {
        let mut every = Every::new(Duration::from_secs(60));
        let first = every.next_after(at("2026-12-03T13:44:30Z"));

        let second = every.next_after(at("2026-12-03T13:44:59.990Z"));

        assert_eq!(first.at(), at("2026-12-03T13:45:00Z"));
        assert_eq!(second.at(), at("2026-12-03T13:46:00Z"));
    }
}
