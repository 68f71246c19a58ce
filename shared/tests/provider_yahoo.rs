//! The Yahoo adapter against a real market-sim over loopback HTTP.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Days, Utc};
use common::provider::*;
use market_sim::{Interval as SimInterval, Knobs, LiveBar, Provider, RetryAfter, RunningSim};
use shared::model::{Bar, DateRange, Interval};
use shared::provider::budget::RateGate;
use shared::provider::yahoo::YahooProvider;
use shared::provider::{http_client, FetchedBars, PriceProvider, ProviderError};

fn truth(sim: &RunningSim, sym: &str, r: &DateRange, interval: SimInterval) -> Vec<Bar> {
    ground_truth(sim, Provider::Yahoo, sym, r, interval)
}

#[tokio::test]
async fn a_three_day_range_is_one_ranged_request() {
    let sim = sim(Knobs::default()).await;
    let fetched = fetch_aapl(&yahoo(&sim)).await.unwrap();
    assert_eq!(fetched.requests, 1);
    assert_eq!(sim.request_count("/v8/finance/chart/", None), 1);
    assert_eq!(sim.request_count("/v8/finance/chart/AAPL", Some(200)), 1);
}

#[tokio::test]
async fn hourly_bars_equal_the_ground_truth() {
    let sim = sim(Knobs::default()).await;
    let fetched = fetch_the_truth(&yahoo(&sim), &sim, "AAPL", &three_days(), Interval::Hour).await;
    assert_eq!(fetched.bars.len(), 21);
    assert_eq!(fetched.skipped, 0);
}

#[tokio::test]
async fn daily_bars_equal_the_ground_truth() {
    let sim = sim(Knobs::default()).await;
    let fetched = fetch_the_truth(&yahoo(&sim), &sim, "MSFT", &three_days(), Interval::Day).await;
    assert_eq!(fetched.bars.len(), 3);
}

#[tokio::test]
async fn a_range_across_the_dst_change_equals_the_ground_truth() {
    let sim = sim(Knobs::default()).await;
    let fetched = fetch_the_truth(
        &yahoo(&sim),
        &sim,
        "AAPL",
        &range("2026-03-06", "2026-03-10"),
        Interval::Hour,
    )
    .await;
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
    let r = three_days();
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
    let fetched = fetch_the_truth(
        &yahoo(&sim),
        &sim,
        "AAPL",
        &range("2026-03-10", "2026-03-10"),
        Interval::Hour,
    )
    .await;
    assert_eq!(fetched.bars.len(), 7);
}

#[tokio::test]
async fn an_unknown_symbol_is_unknown_symbol() {
    let sim = sim(Knobs {
        unknown_symbols: ["DELISTED".to_string()].into(),
        ..Knobs::default()
    })
    .await;
    let err = fetch(&yahoo(&sim), "DELISTED", &three_days(), Interval::Hour)
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
    let sim = sim(rate_limited(RetryAfter::UntilReset)).await;
    let err = fetch_aapl(&yahoo(&sim)).await.unwrap_err();
    assert_eq!(err, ProviderError::RateLimited { retry_after: None });
}

#[tokio::test]
async fn a_retry_after_header_on_a_429_is_still_honoured() {
    let sim = sim(Knobs {
        yahoo_retry_after: true,
        ..rate_limited(RetryAfter::Fixed(9))
    })
    .await;
    let err = fetch_aapl(&yahoo(&sim)).await.unwrap_err();
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
    let r = three_days();
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
    let err = fetch_aapl(&yahoo(&sim)).await.unwrap_err();
    let ProviderError::Unavailable(message) = &err else {
        panic!("expected Unavailable, got {err:?}");
    };
    assert!(message.contains("503"), "{message}");
}

#[tokio::test]
async fn a_truncated_body_is_garbled_and_worth_another_try() {
    let sim = sim(Knobs {
        malformed_symbols: ["AAPL".to_string()].into(),
        ..Knobs::default()
    })
    .await;
    let err = fetch_aapl(&yahoo(&sim)).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Garbled(m) if m.contains("AAPL")) && err.is_transient(),
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
        Arc::new(RateGate::unlimited()),
        Duration::from_millis(200),
    );
    let err = fetch_aapl(&provider).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unavailable(m) if m.contains("timed out")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    let provider = YahooProvider::new(
        http_client(Duration::from_secs(5)).unwrap(),
        refused_base_url(),
        Arc::new(RateGate::unlimited()),
    );
    let err = fetch_aapl(&provider).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unavailable(m) if m.contains("could not connect")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_browser_like_user_agent_is_sent() {
    let sim = sim(Knobs::default()).await;
    fetch_aapl(&yahoo(&sim)).await.unwrap();
    let agent = sim.last_user_agent(Provider::Yahoo).unwrap();
    assert!(agent.starts_with("Mozilla/5.0 ("), "{agent}");
    assert!(agent.contains("Chrome/"), "{agent}");
}

#[tokio::test]
async fn each_request_reserves_one_slot_and_a_429_pauses_the_shared_budget() {
    let sim = sim(Knobs::default()).await;
    let (budget, gate) = recording();
    let provider = yahoo_with(&sim, gate, TIMEOUT);
    let fetched = fetch_aapl(&provider).await.unwrap();
    assert_eq!(fetched.requests, 1);
    assert_eq!(budget.reserved(), 1);
    assert!(budget.pauses().is_empty());

    // Yahoo's 429 carries no Retry-After: the configured pause, for everyone.
    sim.update_knobs(|k| k.rate_limit = rate_limited(RetryAfter::None).rate_limit);
    let e = fetch(&provider, "MSFT", &three_days(), Interval::Hour)
        .await
        .unwrap_err();
    assert!(
        matches!(e, ProviderError::RateLimited { retry_after: None }),
        "{e:?}"
    );
    assert_eq!(budget.reserved(), 2);
    assert_eq!(budget.pauses(), [Duration::from_secs(60)]);
}

// ---- exchange time zones, live bars, close bars, granularity, spelling (issue 7) ----

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&Utc)
}

fn stamps(bars: &[Bar]) -> Vec<String> {
    bars.iter()
        .map(|b| b.ts.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .collect()
}

/// Knobs with Yahoo's clock stopped at `clock`.
fn clocked(clock: &str) -> Knobs {
    Knobs {
        clock: Some(at(clock)),
        ..Knobs::default()
    }
}

/// Symbols on Yahoo's exchanges other than the US ones, as the runs name them.
const SUFFIXED: [&str; 7] = [
    "GS2C.DE",
    "WSU.DE",
    "SAP.DE",
    "0P000071W8.TO",
    "SHOP.TO",
    "7203.T",
    "TSCO.L",
];

#[tokio::test]
async fn exchange_suffixed_symbols_are_requested_with_their_dot_and_equal_the_ground_truth() {
    let sim = sim(Knobs::default()).await;
    // Across Europe's change to summer time (Sunday 29 March 2026).
    let r = range("2026-03-26", "2026-03-31");
    for sym in SUFFIXED {
        for (interval, sim_interval) in [
            (Interval::Hour, SimInterval::Hour),
            (Interval::Day, SimInterval::Day),
        ] {
            let fetched = fetch(&yahoo(&sim), sym, &r, interval)
                .await
                .unwrap_or_else(|e| panic!("{sym} {interval}: {e:?}"));
            let expected = truth(&sim, sym, &r, sim_interval);
            assert!(!expected.is_empty(), "{sym} {interval}");
            assert_eq!(fetched.bars, expected, "{sym} {interval}");
        }
        assert_eq!(
            sim.request_count(&format!("/v8/finance/chart/{sym}"), Some(200)),
            2,
            "{sym}"
        );
        let dashed = sym.replace('.', "-");
        assert_eq!(
            sim.request_count(&format!("/v8/finance/chart/{dashed}"), None),
            0,
            "{sym}"
        );
    }
}

#[tokio::test]
async fn share_classes_take_a_dash_on_every_request() {
    let sim = sim(Knobs::default()).await;
    let r = three_days();
    for (sym, yahoo_spelling) in [("BRK.B", "BRK-B"), ("BF.B", "BF-B")] {
        let fetched = fetch(&yahoo(&sim), sym, &r, Interval::Day).await.unwrap();
        assert_eq!(
            fetched.bars,
            truth(&sim, sym, &r, SimInterval::Day),
            "{sym}"
        );
        assert_eq!(
            sim.request_count(&format!("/v8/finance/chart/{yahoo_spelling}"), Some(200)),
            1,
            "{sym}"
        );
        assert_eq!(
            sim.request_count(&format!("/v8/finance/chart/{sym}"), None),
            0,
            "{sym}"
        );
    }
}

#[tokio::test]
async fn daily_bars_are_keyed_at_midnight_of_the_exchanges_own_zone() {
    let sim = sim(Knobs::default()).await;
    let cases = [
        // New York: EST on Friday 6 March, EDT from Monday 9 March.
        (
            "AAPL",
            "2026-03-06",
            "2026-03-09",
            ["2026-03-06T05:00:00Z", "2026-03-09T04:00:00Z"],
        ),
        // Berlin: CET on Friday 27 March, CEST from Monday 30 March.
        (
            "SAP.DE",
            "2026-03-27",
            "2026-03-30",
            ["2026-03-26T23:00:00Z", "2026-03-29T22:00:00Z"],
        ),
        // London: GMT, then BST.
        (
            "TSCO.L",
            "2026-03-27",
            "2026-03-30",
            ["2026-03-27T00:00:00Z", "2026-03-29T23:00:00Z"],
        ),
        // Tokyo (UTC+9, no DST): the key lies on the previous UTC day.
        (
            "7203.T",
            "2026-03-09",
            "2026-03-10",
            ["2026-03-08T15:00:00Z", "2026-03-09T15:00:00Z"],
        ),
        // Toronto follows New York's DST dates.
        (
            "SHOP.TO",
            "2026-03-06",
            "2026-03-09",
            ["2026-03-06T05:00:00Z", "2026-03-09T04:00:00Z"],
        ),
    ];
    for (sym, start, end, keys) in cases {
        let r = range(start, end);
        let fetched = fetch(&yahoo(&sim), sym, &r, Interval::Day).await.unwrap();
        assert_eq!(stamps(&fetched.bars), keys, "{sym}");
        assert_eq!(
            fetched.bars,
            truth(&sim, sym, &r, SimInterval::Day),
            "{sym}"
        );
    }
}

#[tokio::test]
async fn a_one_day_daily_range_keeps_its_trading_day_east_and_west_of_utc() {
    let sim = sim(Knobs::default()).await;
    for sym in ["7203.T", "SAP.DE", "TSCO.L", "AAPL", "SHOP.TO"] {
        for day in ["2026-03-09", "2026-03-10", "2026-03-13"] {
            let r = range(day, day);
            let fetched = fetch(&yahoo(&sim), sym, &r, Interval::Day).await.unwrap();
            assert_eq!(fetched.bars.len(), 1, "{sym} {day}");
            assert_eq!(
                fetched.bars,
                truth(&sim, sym, &r, SimInterval::Day),
                "{sym} {day}"
            );
        }
        // A Saturday has no trading day anywhere, even where Friday's or Monday's key lies on
        // that UTC date (Tokyo's Monday starts Sunday 15:00Z).
        let saturday = range("2026-03-14", "2026-03-15");
        let fetched = fetch(&yahoo(&sim), sym, &saturday, Interval::Day)
            .await
            .unwrap();
        assert_eq!(fetched.bars, [], "{sym}");
    }
}

#[tokio::test]
async fn during_a_session_the_live_daily_bar_gets_the_same_key_as_the_final_one() {
    // 12:48:24 EDT on Tuesday 10 March: the day's bar is live, stamped at the clock.
    let sim = sim(clocked("2026-03-10T16:48:24Z")).await;
    let r = range("2026-03-09", "2026-03-10");
    for sym in ["AAPL", "SAP.DE"] {
        let fetched = fetch(&yahoo(&sim), sym, &r, Interval::Day).await.unwrap();
        let expected = truth(&sim, sym, &r, SimInterval::Day);
        assert_eq!(stamps(&fetched.bars), stamps(&expected), "{sym}");
        // The finished Monday is final.
        assert_eq!(fetched.bars[0], expected[0], "{sym}");
    }
}

#[tokio::test]
async fn during_a_session_the_live_hourly_bar_is_stored_at_its_period_start() {
    for live in [LiveBar::AtClock, LiveBar::AtPeriodStart, LiveBar::Separate] {
        let sim = sim(Knobs {
            yahoo_live_bar: live,
            ..clocked("2026-03-10T16:48:24Z")
        })
        .await;
        let r = range("2026-03-10", "2026-03-10");
        let fetched = fetch(&yahoo(&sim), "AAPL", &r, Interval::Hour)
            .await
            .unwrap();
        let expected = truth(&sim, "AAPL", &r, SimInterval::Hour);
        // 09:30, 10:30, 11:30 EDT are final; 12:30 is in progress at 12:48:24.
        assert_eq!(
            stamps(&fetched.bars),
            [
                "2026-03-10T13:30:00Z",
                "2026-03-10T14:30:00Z",
                "2026-03-10T15:30:00Z",
                "2026-03-10T16:30:00Z"
            ],
            "{live:?}"
        );
        assert_eq!(fetched.bars[..3], expected[..3], "{live:?}");
        assert_eq!(fetched.bars[3].open, expected[3].open, "{live:?}");
    }
}

#[tokio::test]
async fn after_the_close_the_zero_volume_close_bar_is_not_stored() {
    // Each first clock is after that exchange's close on Tuesday 10 March, before the next
    // open (Yahoo's `regularMarketTime` is then the close itself); the second is days later,
    // when the chart's last session is no longer the current one.
    let cases = [
        ("AAPL", "2026-03-10T21:30:00Z"),
        ("7203.T", "2026-03-10T07:00:00Z"),
        ("SAP.DE", "2026-03-10T17:00:00Z"),
        ("TSCO.L", "2026-03-10T17:00:00Z"),
        ("SHOP.TO", "2026-03-10T21:30:00Z"),
    ];
    for (sym, evening) in cases {
        for clock in [evening, "2026-03-13T12:00:00Z"] {
            let sim = sim(Knobs {
                yahoo_close_bar: true,
                ..clocked(clock)
            })
            .await;
            let r = range("2026-03-09", "2026-03-10");
            let fetched = fetch(&yahoo(&sim), sym, &r, Interval::Hour).await.unwrap();
            assert_eq!(
                fetched.bars,
                truth(&sim, sym, &r, SimInterval::Hour),
                "{sym} at {clock}"
            );
            assert!(
                fetched.bars.iter().all(|b| b.volume != Some(0)),
                "{sym} at {clock}: {:?}",
                fetched.bars.last()
            );
        }
    }
}

#[tokio::test]
async fn another_granularity_than_asked_fails_the_ticker_naming_both() {
    let sim = sim(Knobs {
        coarse_symbols: ["FUND".to_string()].into(),
        ..Knobs::default()
    })
    .await;
    let r = three_days();
    for interval in [Interval::Hour, Interval::Day] {
        let err = fetch(&yahoo(&sim), "FUND", &r, interval).await.unwrap_err();
        assert_eq!(
            err,
            ProviderError::MalformedResponse(format!(
                "yahoo sent 3mo bars for FUND where {interval} was asked"
            ))
        );
        assert!(err.is_ticker_failure());
    }
    // Other symbols of the same simulator are unaffected.
    fetch_the_truth(&yahoo(&sim), &sim, "AAPL", &r, Interval::Hour).await;
}
