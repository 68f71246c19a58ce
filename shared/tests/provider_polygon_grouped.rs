//! The Polygon adapter's grouped daily bars against a real market-sim over loopback HTTP.
//!
//! The wire format is Polygon's (polygon.io/docs/stocks/get_v2_aggs_grouped_locale_us_market_
//! stocks__date, quoted in Seerden/trade documentation/price-action/api/polygon/grouped-daily.md;
//! polygon-io/client-python PR #128 `get_grouped_daily_aggs`): `results` of
//! `{"T","o","h","l","c","v","vw","n","t"}`, `resultsCount: 0` and no `results` on a day without
//! trading. `t` in its documented example is 16:00 New York (the close), and market-sim sends it
//! so: the adapter must key each bar at 00:00 New York of the day asked for, as the per-ticker
//! daily aggregates do.

mod common;

use std::sync::Arc;

use common::provider::*;
use market_sim::{Interval as SimInterval, Knobs, Provider, RunningSim};
use shared::model::{DateRange, Interval, Symbol};
use shared::provider::budget::RateGate;
use shared::provider::polygon::PolygonProvider;
use shared::provider::{PriceProvider, ProviderError};

/// Polygon on `sim` with `key`, unpaced.
fn polygon_keyed(sim: &RunningSim, key: &str) -> PolygonProvider {
    polygon_with(&sim.base_url(), key, Arc::new(RateGate::unlimited()))
}

#[tokio::test]
async fn grouped_bars_carry_the_per_ticker_daily_keys_and_prices() {
    let sim = sim(Knobs {
        grouped_symbols: ["ZZZT".to_string()].into(),
        ..Knobs::default()
    })
    .await;
    let provider = polygon(&sim);
    let answer = provider.grouped_daily(day("2026-03-10")).await.unwrap();
    assert_eq!(answer.requests, 1);
    assert_eq!(answer.skipped, 0);
    let range = DateRange::new(day("2026-03-10"), day("2026-03-10")).unwrap();
    for symbol in ["AAPL", "BRK.B", "ZZZT"] {
        let (_, bar) = answer
            .bars
            .iter()
            .find(|(t, _)| t == symbol)
            .unwrap_or_else(|| panic!("{symbol} is listed"));
        // What the per-ticker path stores for the same day: same key, same prices.
        let per_ticker = provider
            .fetch_bars(&Symbol::parse(symbol).unwrap(), &range, Interval::Day)
            .await
            .unwrap();
        assert_eq!(per_ticker.bars.len(), 1, "{symbol}");
        assert_eq!(bar, &per_ticker.bars[0], "{symbol}");
        assert_eq!(bar.ts.to_rfc3339(), "2026-03-10T04:00:00+00:00");
        let truth = sim.ground_truth(
            Provider::Polygon,
            symbol,
            SimInterval::Day,
            day("2026-03-10"),
            day("2026-03-10"),
        );
        assert_eq!(truth[0].ts, bar.ts);
        assert_eq!(truth[0].close, bar.close);
    }
    assert_eq!(sim.grouped_requests(None), 1);
}

#[tokio::test]
async fn a_day_without_trading_lists_nothing() {
    let sim = sim(Knobs::default()).await;
    let answer = polygon(&sim)
        .grouped_daily(day("2026-03-07"))
        .await
        .unwrap();
    assert!(answer.bars.is_empty());
    assert_eq!(answer.requests, 1);
}

#[tokio::test]
async fn grouped_errors_are_named_like_the_aggregates_and_never_carry_the_key() {
    let sim = sim(Knobs {
        fail_every_nth: Some(1),
        ..Knobs::default()
    })
    .await;
    let e = polygon(&sim)
        .grouped_daily(day("2026-03-10"))
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    sim.update_knobs(|k| k.fail_every_nth = None);
    let e = polygon_keyed(&sim, "pk_wrong_secret")
        .grouped_daily(day("2026-03-10"))
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::Rejected(_)), "{e:?}");
    assert!(!e.to_string().contains("pk_wrong_secret"), "{e}");
    sim.update_knobs(|k| k.malformed_all = true);
    let e = polygon(&sim)
        .grouped_daily(day("2026-03-10"))
        .await
        .unwrap_err();
    assert_eq!(e.name(), "GarbledResponse");
}
