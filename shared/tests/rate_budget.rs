//! The shared request budget's SQL (`shared::db::rate_budget`) against a real PostgreSQL, on
//! simulated time: each statement is given the instant it runs at, so the tests say exactly when
//! every slot falls, whatever the machine's speed. Concurrent acquirers use connections of their
//! own, as separate Lambda instances do.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use shared::db::{self, rate_budget};
use shared::provider::budget::Reservation;
use test_support::TestDb;

const BUDGET: &str = "polygon:0123456789abcdef";
/// A long `max_wait`: every reservation is granted.
const PATIENT: Duration = Duration::from_secs(3600);

async fn migrated() -> TestDb {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    db::migrate::run(&mut client).await.unwrap();
    db
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 9, 14, 0, 0).unwrap()
}

fn after(at: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    at + chrono::Duration::from_std(wait).unwrap()
}

fn granted(r: Reservation) -> Duration {
    match r {
        Reservation::Granted { wait } => wait,
        Reservation::Far { wait } => panic!("expected a slot, the next is {wait:?} away"),
    }
}

/// The most slots that fall within any `window`.
fn most_in_any_window(slots: &[DateTime<Utc>], window: chrono::Duration) -> usize {
    (0..slots.len())
        .map(|i| {
            slots[i..]
                .iter()
                .take_while(|s| **s - slots[i] < window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn concurrent_acquirers_never_exceed_the_aggregate_rate() {
    let db = migrated().await;
    // 120 a minute: a slot every 500 ms for everyone together.
    let interval = Duration::from_millis(500);
    let (instances, each) = (8, 15);
    let mut tasks = Vec::new();
    for _ in 0..instances {
        let client = db.client().await;
        tasks.push(tokio::spawn(async move {
            // Each instance asks at t0, then again when its slot came (it slept until then).
            let mut now = t0();
            let mut slots = Vec::new();
            for _ in 0..each {
                let wait = granted(
                    rate_budget::reserve(&client, BUDGET, interval, PATIENT, Some(now))
                        .await
                        .unwrap(),
                );
                now = after(now, wait);
                slots.push(now);
            }
            slots
        }));
    }
    let mut slots = Vec::new();
    for task in tasks {
        slots.extend(task.await.unwrap());
    }
    slots.sort();

    assert_eq!(slots.len(), instances * each);
    assert_eq!(slots[0], t0());
    for pair in slots.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            chrono::Duration::milliseconds(500),
            "two slots closer than the interval, or a gap: {pair:?}"
        );
    }
    // The provider's view: never more than 120 requests in any minute, nor 1 in any 500 ms.
    assert_eq!(
        most_in_any_window(&slots, chrono::Duration::minutes(1)),
        120
    );
    assert_eq!(
        most_in_any_window(&slots, chrono::Duration::milliseconds(500)),
        1
    );
    let client = db.client().await;
    let usage = rate_budget::usage(&client, BUDGET).await.unwrap();
    assert_eq!((usage.granted, usage.denied), (120, 0));
}

#[tokio::test]
async fn a_429_pauses_every_acquirer_until_retry_after() {
    let db = migrated().await;
    let client = db.client().await;
    let interval = Duration::from_secs(1);
    granted(
        rate_budget::reserve(&client, BUDGET, interval, PATIENT, Some(t0()))
            .await
            .unwrap(),
    );
    // One instance got a 429 with Retry-After: 30 at t0 + 2 s.
    let limited_at = after(t0(), Duration::from_secs(2));
    rate_budget::pause(&client, BUDGET, Duration::from_secs(30), Some(limited_at))
        .await
        .unwrap();
    // A shorter pause later does not shorten it.
    rate_budget::pause(
        &client,
        BUDGET,
        Duration::from_secs(5),
        Some(after(limited_at, Duration::from_secs(1))),
    )
    .await
    .unwrap();

    // Four other instances ask a second later: none before the pause ends, then one a second.
    let asked_at = after(limited_at, Duration::from_secs(1));
    let mut slots = Vec::new();
    for _ in 0..4 {
        let other = db.client().await;
        let wait = granted(
            rate_budget::reserve(&other, BUDGET, interval, PATIENT, Some(asked_at))
                .await
                .unwrap(),
        );
        slots.push(after(asked_at, wait));
    }
    let resume = after(limited_at, Duration::from_secs(30));
    assert_eq!(
        slots,
        (0..4)
            .map(|i| resume + chrono::Duration::seconds(i))
            .collect::<Vec<_>>()
    );
    assert_eq!(rate_budget::usage(&client, BUDGET).await.unwrap().paused, 2);
}

#[tokio::test]
async fn a_far_slot_is_reported_and_not_taken() {
    let db = migrated().await;
    let client = db.client().await;
    // One every 10 s; an invocation may sleep 15 s at most.
    let (interval, max_wait) = (Duration::from_secs(10), Duration::from_secs(15));
    let reserve = |at| rate_budget::reserve(&client, BUDGET, interval, max_wait, Some(at));
    assert_eq!(granted(reserve(t0()).await.unwrap()), Duration::ZERO);
    assert_eq!(
        granted(reserve(t0()).await.unwrap()),
        Duration::from_secs(10)
    );
    assert_eq!(
        reserve(t0()).await.unwrap(),
        Reservation::Far {
            wait: Duration::from_secs(20)
        }
    );
    // Nobody took the slot at t0 + 20 s: whoever asks at t0 + 10 s gets it.
    assert_eq!(
        granted(reserve(after(t0(), Duration::from_secs(10))).await.unwrap()),
        Duration::from_secs(10)
    );
    let usage = rate_budget::usage(&client, BUDGET).await.unwrap();
    assert_eq!((usage.granted, usage.denied), (3, 1));
}

#[tokio::test]
async fn budgets_of_different_keys_are_independent_and_idle_time_is_not_saved_up() {
    let db = migrated().await;
    let client = db.client().await;
    let interval = Duration::from_secs(1);
    let other = "polygon:fedcba9876543210";
    for budget in [BUDGET, other] {
        assert_eq!(
            granted(
                rate_budget::reserve(&client, budget, interval, PATIENT, Some(t0()))
                    .await
                    .unwrap()
            ),
            Duration::ZERO
        );
    }
    // An hour idle buys no burst: two requests asked at once are still a second apart.
    let later = after(t0(), Duration::from_secs(3600));
    let first = rate_budget::reserve(&client, BUDGET, interval, PATIENT, Some(later));
    assert_eq!(granted(first.await.unwrap()), Duration::ZERO);
    let second = rate_budget::reserve(&client, BUDGET, interval, PATIENT, Some(later));
    assert_eq!(granted(second.await.unwrap()), Duration::from_secs(1));
}
