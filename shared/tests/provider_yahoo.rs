//! The Yahoo adapter against a real market-sim over loopback HTTP.

use std::sync::Arc;
use std::time::Duration;

use chrono::{Days, NaiveDate, Utc};
use market_sim::{
    spawn, GroundTruthBar, Interval as SimInterval, Knobs, Provider, RateLimit, RetryAfter,
    RunningSim, SimConfig,
};
use shared::model::{Bar, DateRange, Interval, Symbol};
use shared::provider::pacing::Pacer;
use shared::provider::yahoo::YahooProvider;
use shared::provider::{http_client, FetchedBars, PriceProvider, ProviderError};
use url::Url;

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn range(start: &str, end: &str) -> DateRange {
    DateRange::new(day(start), day(end)).unwrap()
}

fn symbol(s: &str) -> Symbol {
    Symbol::parse(s).unwrap()
}

async fn sim(knobs: Knobs) -> RunningSim {
    spawn(SimConfig::with_knobs(knobs)).await.unwrap()
}

fn yahoo_with(sim: &RunningSim, pacer: Arc<Pacer>, timeout: Duration) -> YahooProvider {
    YahooProvider::new(
        http_client(timeout).unwrap(),
        Url::parse(&sim.base_url()).unwrap(),
        pacer,
    )
}

fn yahoo(sim: &RunningSim) -> YahooProvider {
    yahoo_with(sim, Arc::new(Pacer::unlimited()), Duration::from_secs(10))
}

async fn fetch(
    provider: &YahooProvider,
    sym: &str,
    r: &DateRange,
    interval: Interval,
) -> Result<FetchedBars, ProviderError> {
    provider.fetch_bars(&symbol(sym), r, interval).await
}

fn as_bars(truth: Vec<GroundTruthBar>) -> Vec<Bar> {
    truth
        .into_iter()
        .map(|t| Bar {
            ts: t.ts,
            open: Some(t.open),
            high: Some(t.high),
            low: Some(t.low),
            close: t.close,
            volume: Some(t.volume),
        })
        .collect()
}

fn truth(sim: &RunningSim, sym: &str, r: &DateRange, interval: SimInterval) -> Vec<Bar> {
    as_bars(sim.ground_truth(Provider::Yahoo, sym, interval, r.start(), r.end()))
}

/// Takes a token if one is free right now, without waiting for a refill.
async fn token_available(pacer: &Pacer) -> bool {
    tokio::time::timeout(Duration::ZERO, pacer.acquire())
        .await
        .is_ok()
}

#[tokio::test]
async fn a_three_day_range_is_one_ranged_request() {
    let sim = sim(Knobs::default()).await;
    let fetched = fetch(
        &yahoo(&sim),
        "AAPL",
        &range("2026-03-09", "2026-03-11"),
        Interval::Hour,
    )
    .await
    .unwrap();
    assert_eq!(fetched.requests, 1);
    assert_eq!(sim.request_count("/v8/finance/chart/", None), 1);
    assert_eq!(sim.request_count("/v8/finance/chart/AAPL", Some(200)), 1);
}

#[tokio::test]
async fn hourly_bars_equal_the_ground_truth() {
    let sim = sim(Knobs::default()).await;
    let r = range("2026-03-09", "2026-03-11");
    let fetched = fetch(&yahoo(&sim), "AAPL", &r, Interval::Hour)
        .await
        .unwrap();
    assert_eq!(fetched.bars.len(), 21);
    assert_eq!(fetched.bars, truth(&sim, "AAPL", &r, SimInterval::Hour));
    assert_eq!(fetched.skipped, 0);
}

#[tokio::test]
async fn daily_bars_equal_the_ground_truth() {
    let sim = sim(Knobs::default()).await;
    let r = range("2026-03-09", "2026-03-11");
    let fetched = fetch(&yahoo(&sim), "MSFT", &r, Interval::Day)
        .await
        .unwrap();
    assert_eq!(fetched.bars.len(), 3);
    assert_eq!(fetched.bars, truth(&sim, "MSFT", &r, SimInterval::Day));
}

#[tokio::test]
async fn a_range_across_the_dst_change_equals_the_ground_truth() {
    let sim = sim(Knobs::default()).await;
    let r = range("2026-03-06", "2026-03-10");
    let fetched = fetch(&yahoo(&sim), "AAPL", &r, Interval::Hour)
        .await
        .unwrap();
    assert_eq!(fetched.bars, truth(&sim, "AAPL", &r, SimInterval::Hour));
    // Each day opens at 09:30 New York: 14:30Z on Friday (EST), 13:30Z from Monday on (EDT).
    let mut opens: Vec<String> = Vec::new();
    for bar in &fetched.bars {
        let stamp = bar.ts.format("%Y-%m-%dT%H:%MZ").to_string();
        if opens.last().is_none_or(|o| o[..10] != stamp[..10]) {
            opens.push(stamp);
        }
    }
    assert_eq!(
        opens,
        [
            "2026-03-06T14:30Z",
            "2026-03-09T13:30Z",
            "2026-03-10T13:30Z"
        ]
    );
    assert_eq!(fetched.bars.len(), 3 * 7);
}

#[tokio::test]
async fn bars_with_a_null_element_are_skipped_and_counted() {
    let sim = sim(Knobs {
        null_symbols: ["AAPL".to_string()].into(),
        ..Knobs::default()
    })
    .await;
    let r = range("2026-03-09", "2026-03-11");
    let fetched = fetch(&yahoo(&sim), "AAPL", &r, Interval::Hour)
        .await
        .unwrap();
    let expected = sim.ground_truth_with_skipped(
        Provider::Yahoo,
        "AAPL",
        SimInterval::Hour,
        r.start(),
        r.end(),
    );
    assert!(expected.skipped > 0);
    assert_eq!(fetched.skipped, expected.skipped);
    assert_eq!(fetched.bars, as_bars(expected.bars));
}

#[tokio::test]
async fn a_chart_without_timestamps_is_an_empty_success() {
    let sim = sim(Knobs::default()).await;
    // A weekend: Yahoo omits `timestamp` and sends `{"quote":[{}]}`.
    let fetched = fetch(
        &yahoo(&sim),
        "AAPL",
        &range("2026-03-07", "2026-03-08"),
        Interval::Hour,
    )
    .await
    .unwrap();
    assert_eq!(
        fetched,
        FetchedBars {
            bars: vec![],
            skipped: 0,
            requests: 1
        }
    );
    assert_eq!(sim.request_count("/v8/finance/chart/AAPL", Some(200)), 1);
}

#[tokio::test]
async fn bars_outside_the_requested_window_are_dropped() {
    let sim = sim(Knobs {
        pad_range_days: 2,
        ..Knobs::default()
    })
    .await;
    let r = range("2026-03-10", "2026-03-10");
    let fetched = fetch(&yahoo(&sim), "AAPL", &r, Interval::Hour)
        .await
        .unwrap();
    assert_eq!(fetched.bars, truth(&sim, "AAPL", &r, SimInterval::Hour));
    assert_eq!(fetched.bars.len(), 7);
}

#[tokio::test]
async fn an_unknown_symbol_is_unknown_symbol() {
    let sim = sim(Knobs {
        unknown_symbols: ["DELISTED".to_string()].into(),
        ..Knobs::default()
    })
    .await;
    let err = fetch(
        &yahoo(&sim),
        "DELISTED",
        &range("2026-03-09", "2026-03-11"),
        Interval::Hour,
    )
    .await
    .unwrap_err();
    let ProviderError::UnknownSymbol(message) = &err else {
        panic!("expected UnknownSymbol, got {err:?}");
    };
    assert!(message.contains("DELISTED"), "{message}");
    assert!(message.contains("symbol may be delisted"), "{message}");
    assert!(err.is_ticker_failure());
}

#[tokio::test]
async fn hourly_bars_older_than_730_days_are_range_unsupported() {
    let sim = sim(Knobs::default()).await;
    let today = Utc::now().date_naive();
    let r = DateRange::new(today - Days::new(800), today - Days::new(790)).unwrap();
    let err = fetch(&yahoo(&sim), "AAPL", &r, Interval::Hour)
        .await
        .unwrap_err();
    let ProviderError::RangeUnsupported(message) = &err else {
        panic!("expected RangeUnsupported, got {err:?}");
    };
    assert!(message.contains("730 days"), "{message}");
    assert_eq!(sim.request_count("/v8/finance/chart/AAPL", Some(422)), 1);
}

#[tokio::test]
async fn check_range_refuses_hourly_starts_older_than_730_days_and_suggests_daily() {
    let sim = sim(Knobs::default()).await;
    let provider = yahoo(&sim);
    let today = Utc::now().date_naive();
    let oldest_ok = DateRange::new(today - Days::new(729), today).unwrap();
    assert!(provider.check_range(&oldest_ok, Interval::Hour).is_ok());
    let too_old = DateRange::new(today - Days::new(730), today).unwrap();
    let err = provider.check_range(&too_old, Interval::Hour).unwrap_err();
    assert_eq!(err.name(), "InvalidInput");
    let message = err.to_string();
    assert!(message.contains("730 days"), "{message}");
    assert!(message.contains("1d"), "{message}");
    assert!(provider.check_range(&too_old, Interval::Day).is_ok());
    // check_range is a local rule: no request was made.
    assert_eq!(sim.requests().total, 0);
}

#[tokio::test]
async fn a_plain_text_429_is_rate_limited_without_a_wait() {
    let sim = sim(Knobs {
        rate_limit: Some(RateLimit {
            requests: 0,
            window_seconds: 60,
            retry_after: RetryAfter::UntilReset,
        }),
        ..Knobs::default()
    })
    .await;
    let err = fetch(
        &yahoo(&sim),
        "AAPL",
        &range("2026-03-09", "2026-03-11"),
        Interval::Hour,
    )
    .await
    .unwrap_err();
    assert_eq!(err, ProviderError::RateLimited { retry_after: None });
}

#[tokio::test]
async fn a_retry_after_header_on_a_429_is_still_honoured() {
    let sim = sim(Knobs {
        rate_limit: Some(RateLimit {
            requests: 0,
            window_seconds: 60,
            retry_after: RetryAfter::Fixed(9),
        }),
        yahoo_retry_after: true,
        ..Knobs::default()
    })
    .await;
    let err = fetch(
        &yahoo(&sim),
        "AAPL",
        &range("2026-03-09", "2026-03-11"),
        Interval::Hour,
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(9))
        }
    );
}

#[tokio::test]
async fn class_shares_are_requested_with_a_dash_and_returned_as_given() {
    let sim = sim(Knobs::default()).await;
    let r = range("2026-03-09", "2026-03-11");
    let fetched = fetch(&yahoo(&sim), "BRK.B", &r, Interval::Hour)
        .await
        .unwrap();
    assert_eq!(sim.request_count("/v8/finance/chart/BRK-B", Some(200)), 1);
    assert_eq!(sim.request_count("/v8/finance/chart/BRK.B", None), 0);
    assert_eq!(fetched.bars, truth(&sim, "BRK-B", &r, SimInterval::Hour));
}

#[tokio::test]
async fn a_server_error_is_unavailable() {
    let sim = sim(Knobs {
        fail_every_nth: Some(1),
        ..Knobs::default()
    })
    .await;
    let err = fetch(
        &yahoo(&sim),
        "AAPL",
        &range("2026-03-09", "2026-03-11"),
        Interval::Hour,
    )
    .await
    .unwrap_err();
    let ProviderError::Unavailable(message) = &err else {
        panic!("expected Unavailable, got {err:?}");
    };
    assert!(message.contains("503"), "{message}");
}

#[tokio::test]
async fn a_truncated_body_is_a_malformed_response() {
    let sim = sim(Knobs {
        malformed_symbols: ["AAPL".to_string()].into(),
        ..Knobs::default()
    })
    .await;
    let err = fetch(
        &yahoo(&sim),
        "AAPL",
        &range("2026-03-09", "2026-03-11"),
        Interval::Hour,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ProviderError::MalformedResponse(m) if m.contains("AAPL")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_slow_answer_times_out_as_unavailable() {
    let sim = sim(Knobs {
        latency_ms: 5_000,
        ..Knobs::default()
    })
    .await;
    let provider = yahoo_with(
        &sim,
        Arc::new(Pacer::unlimited()),
        Duration::from_millis(200),
    );
    let err = fetch(
        &provider,
        "AAPL",
        &range("2026-03-09", "2026-03-11"),
        Interval::Hour,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unavailable(m) if m.contains("timed out")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    // A port that was free a moment ago and has no listener now.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let provider = YahooProvider::new(
        http_client(Duration::from_secs(5)).unwrap(),
        Url::parse(&format!("http://{addr}")).unwrap(),
        Arc::new(Pacer::unlimited()),
    );
    let err = fetch(
        &provider,
        "AAPL",
        &range("2026-03-09", "2026-03-11"),
        Interval::Hour,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unavailable(m) if m.contains("could not connect")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_browser_like_user_agent_is_sent() {
    let sim = sim(Knobs::default()).await;
    fetch(
        &yahoo(&sim),
        "AAPL",
        &range("2026-03-09", "2026-03-11"),
        Interval::Hour,
    )
    .await
    .unwrap();
    let agent = sim.last_user_agent(Provider::Yahoo).unwrap();
    assert!(agent.starts_with("Mozilla/5.0 ("), "{agent}");
    assert!(agent.contains("Chrome/"), "{agent}");
}

#[tokio::test]
async fn each_request_takes_a_token_from_the_pacer() {
    let sim = sim(Knobs::default()).await;
    // Two tokens and no meaningful refill (one a minute): the fetch must leave exactly one.
    let pacer = Arc::new(Pacer::new(1, 2));
    let provider = yahoo_with(&sim, pacer.clone(), Duration::from_secs(10));
    let fetched = fetch(
        &provider,
        "AAPL",
        &range("2026-03-09", "2026-03-11"),
        Interval::Hour,
    )
    .await
    .unwrap();
    assert_eq!(fetched.requests, 1);
    assert!(token_available(&pacer).await);
    assert!(!token_available(&pacer).await);
}
