//! When a run on real data answers, and how many run at once (issue 5).
//!
//! A run that ends sooner on some rows than on others (a join that meets its rare row, a filter
//! that keeps many rows or few) would tell about them through its time, which the researcher
//! sees. So each run on real data (an interactive query, each output of a job) answers at a time
//! fixed before it starts, from static sizes alone: its *slot* ([`AnswerTime::slot`]) of the rows
//! it reads as the datasets' latest committed versions count them (before the cohort and the
//! consent registry's exclusions): every table the permit grants, which the run reads and
//! opens, and once more each table its query scans (`Workspace::scans`, asked over empty
//! tables). The slot starts when the run has its turn, before anything is read, and the query's
//! own time limit ends at the slot's start plus the limit. A run that ends within its slot,
//! answer or refusal, is held until the slot ends. One that does not answers at the limit plus
//! a grace for output checking ([`Pace::answer`]; past that, at the next multiple of the grace),
//! whatever it ended with, and spends one of the permit's stops ([`LATE`]) unless it was already
//! a stop: whether a run passes its slot is a bit about the rows, budgeted like the other stops.
//!
//! Runs on real data also wait their turn in a [`RunQueue`] (a few at once), so that the load of
//! other runs passes a run's slot less often; the wait comes before the slot. The queue is the
//! process's: the server's runs share one, each `niji query`/`niji job` command is a process of
//! its own.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// How a run's slot is judged from the rows it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnswerTime {
    /// The shortest slot: opening the workspace, planning, the persons count's rewrite and
    /// output checking.
    pub least: Duration,
    /// Time given for each million rows the run reads and opens, and each million its query's
    /// scans read (the committed versions' rows); generous, since a run passing its slot spends
    /// a stop. Joins that make many more rows than they read may need more (`max_join_rows`).
    pub per_million_rows: Duration,
}

impl Default for AnswerTime {
    fn default() -> Self {
        AnswerTime { least: Duration::from_secs(2), per_million_rows: Duration::from_secs(1) }
    }
}

impl AnswerTime {
    /// The slot of a run whose scans read `rows`, never past `limit` (the run's time limit).
    pub fn slot(&self, rows: u64, limit: Duration) -> Duration {
        let per_row = self.per_million_rows.as_secs_f64() / 1e6;
        let slot = self.least.as_secs_f64() + per_row * rows as f64;
        Duration::try_from_secs_f64(slot).unwrap_or(limit).min(limit)
    }
}

/// The stop code of a run that passed its slot.
pub(crate) const LATE: &str = "late";

/// The instance's queue of runs on real data: at most so many read and run at once (each holds
/// its tables in memory, up to its memory limit). Clones share the queue.
#[derive(Clone, Debug)]
pub struct RunQueue(Arc<tokio::sync::Semaphore>);

impl RunQueue {
    /// A queue letting `at_once` runs (at least one) go at a time.
    pub fn new(at_once: usize) -> Self {
        RunQueue(Arc::new(tokio::sync::Semaphore::new(at_once.max(1))))
    }

    /// Waits for a turn; the run goes until the turn is dropped.
    pub(crate) async fn turn(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.0.clone().acquire_owned().await.expect("the queue is never closed")
    }
}

impl Default for RunQueue {
    fn default() -> Self {
        RunQueue::new(2)
    }
}

/// A run's pace: started when the run has its turn, held until its answer's time.
pub(crate) struct Pace {
    start: Instant,
    slot: Duration,
    limit: Duration,
}

impl Pace {
    pub(crate) fn start(slot: Duration, limit: Duration) -> Self {
        Pace { start: Instant::now(), slot: slot.min(limit), limit }
    }

    /// When the run's query must end: the slot's start plus the time limit.
    pub(crate) fn deadline(&self) -> std::time::Instant {
        (self.start + self.limit).into_std()
    }

    /// Waits until the run may answer: the end of its slot, or for a run that passed it (then
    /// `true`: the run is late) the limit plus a grace (a quarter of the limit, at least a
    /// second) for what follows the query, or the first multiple of the grace after that which
    /// is still ahead.
    pub(crate) async fn answer(self) -> bool {
        let elapsed = self.start.elapsed();
        if elapsed <= self.slot {
            tokio::time::sleep_until(self.start + self.slot).await;
            return false;
        }
        let grace = (self.limit / 4).max(Duration::from_secs(1));
        let mut at = self.limit + grace;
        while at < elapsed {
            at += grace;
        }
        tokio::time::sleep_until(self.start + at).await;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(least_ms: u64, per_million_ms: u64, rows: u64, limit_ms: u64, expected_ms: u64) {
        let time = AnswerTime { least: Duration::from_millis(least_ms), per_million_rows: Duration::from_millis(per_million_ms) };
        assert_eq!(time.slot(rows, Duration::from_millis(limit_ms)).as_millis(), u128::from(expected_ms), "{rows} rows");
    }

    #[test]
    fn a_slot_grows_with_the_rows_read_up_to_the_limit() {
        check(1_000, 1_000, 0, 120_000, 1_000);
        check(1_000, 1_000, 1 << 20, 120_000, 2_048);
        check(1_000, 1_000, 16 << 20, 120_000, 17_777);
        check(1_000, 1_000, 1 << 40, 120_000, 120_000);
        check(1_000, 1_000, u64::MAX, 120_000, 120_000);
        check(0, 0, 1 << 30, 120_000, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_answers_at_its_slot_or_past_the_limit_at_a_fixed_time() {
        let (slot, limit) = (Duration::from_secs(2), Duration::from_secs(120));
        // (how long the run takes, when it answers, late)
        for (runs, answers, late) in
            [(1_500, 2_000, false), (2_000, 2_000, false), (2_500, 150_000, true), (119_000, 150_000, true), (150_500, 180_000, true)]
        {
            let pace = Pace::start(slot, limit);
            let started = Instant::now();
            assert_eq!(pace.deadline(), (started + limit).into_std());
            tokio::time::sleep(Duration::from_millis(runs)).await;
            assert_eq!(pace.answer().await, late, "{runs} ms");
            assert_eq!(started.elapsed(), Duration::from_millis(answers), "{runs} ms");
        }
    }
}
