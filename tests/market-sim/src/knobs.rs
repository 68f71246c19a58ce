//! Fault and behaviour knobs. Settable at start-up (CLI flags / [`crate::SimConfig`]), over HTTP
//! (`POST /__admin/knobs`, a partial JSON object merged into the current knobs) and in-process
//! ([`crate::RunningSim::set_knobs`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::generator::canonical_symbol;

/// How the `fail_every_nth` requests fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum FailKind {
    /// The `fail_status` HTTP status (503 by default).
    #[default]
    Status,
    /// A 200 whose JSON body is cut in half (a dropped connection, a proxy).
    Truncated,
    /// The normal answer, after `fail_slow_ms`.
    Slow,
}

/// What a 429 says about when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RetryAfter {
    /// `Retry-After: <seconds until a request would be accepted again, rounded up>`: until the
    /// fixed window resets, or until the oldest accepted request leaves the sliding window.
    #[default]
    UntilReset,
    /// No `Retry-After` header.
    None,
    /// `Retry-After: <this many seconds>`.
    Fixed(u64),
}

/// How a [`RateLimit`] counts its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// Windows of `window_seconds` one after another, each started by the first request after
    /// the previous one ended: up to `2 × requests` can pass in a short interval that straddles
    /// a window boundary.
    #[default]
    Fixed,
    /// At most `requests` accepted in any interval of `window_seconds` (a log of accepted
    /// times), as providers that count "the last minute" do: no burst at a boundary.
    Sliding,
}

/// A rate limit, counted per provider (Yahoo and Polygon are separate services with separate
/// quotas). Only accepted requests count: at most `requests` are answered per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub requests: u32,
    #[serde(default = "default_window_seconds")]
    pub window_seconds: u64,
    /// Polygon's `Retry-After`. Yahoo never sends one unless `yahoo_retry_after` is set.
    #[serde(default)]
    pub retry_after: RetryAfter,
    /// `fixed` (the default) or `sliding`.
    #[serde(default)]
    pub kind: WindowKind,
}

fn default_window_seconds() -> u64 {
    60
}

/// How Yahoo shows the bar whose period holds the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LiveBar {
    /// Stamped at the clock (`meta.regularMarketTime`) instead of its period start.
    #[default]
    AtClock,
    /// Stamped at its period start, with the values so far: only `currentTradingPeriod` and
    /// `regularMarketTime` tell it from a final bar.
    AtPeriodStart,
    /// Stamped at its period start, followed by a zero-volume row at the clock whose open, high,
    /// low and close are the price at the clock.
    Separate,
}

/// A positive, finite price multiplier (`price_scale`). JSON: a plain number.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Scale(f64);

impl Scale {
    pub fn new(factor: f64) -> Result<Scale, String> {
        if factor.is_finite() && factor > 0.0 {
            Ok(Scale(factor))
        } else {
            Err(format!(
                "a price scale must be a positive number, not {factor}"
            ))
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

// Never NaN (see `new`), so equality is an equivalence.
impl Eq for Scale {}

impl TryFrom<f64> for Scale {
    type Error = String;
    fn try_from(factor: f64) -> Result<Self, Self::Error> {
        Scale::new(factor)
    }
}

impl From<Scale> for f64 {
    fn from(scale: Scale) -> f64 {
        scale.0
    }
}

/// Every knob. The JSON form uses these field names; absent fields keep their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    /// `null` = unlimited.
    pub rate_limit: Option<RateLimit>,
    /// Make Yahoo's 429 carry the same `Retry-After` as Polygon's (real Yahoo sends none).
    pub yahoo_retry_after: bool,
    /// Added to every provider response.
    pub latency_ms: u64,
    /// Every n-th provider request (1-based, counted over both providers since start or reset,
    /// 429s included) is answered with `fail_status`.
    pub fail_every_nth: Option<u64>,
    pub fail_status: u16,
    /// How those n-th requests fail: `status` (answered with `fail_status`), `truncated` (a
    /// 200 whose JSON body is cut in half), or `slow` (answered normally after `fail_slow_ms`,
    /// so that a client with a shorter timeout gives up).
    pub fail_kind: FailKind,
    pub fail_slow_ms: u64,
    /// Symbols answered with a 200 whose JSON body is cut in half.
    pub malformed_symbols: BTreeSet<String>,
    /// Cut every provider body in half.
    pub malformed_all: bool,
    /// Symbols the providers do not know: Yahoo 404, Polygon an empty result.
    pub unknown_symbols: BTreeSet<String>,
    /// Symbols whose Yahoo bars have a null element in every `null_every_nth` bar (by the bar's
    /// calendar ordinal, so the same bars whatever the range).
    pub null_symbols: BTreeSet<String>,
    pub null_every_nth: u32,
    /// Serve this many extra days on each side of the requested range, as providers sometimes
    /// do; a correct client drops them.
    pub pad_range_days: u32,
    /// Caps Polygon's page size (its `limit`), to exercise `next_url` paging.
    pub polygon_page_size: Option<u32>,
    /// Polygon's `status` word on success (`OK`, or `DELAYED` as on basic plans).
    pub polygon_status: String,
    /// The only `apiKey` Polygon accepts.
    pub polygon_api_key: String,
    /// "Now" for every Yahoo answer (live bar, close bar, `regularMarketTime`,
    /// `currentTradingPeriod`, the 730-day rule): an RFC 3339 instant, or `null` for real time.
    pub clock: Option<DateTime<Utc>>,
    /// Intraday Yahoo charts end with a zero-volume bar at the close of their last session
    /// (open = high = low = close) once the clock is past that close.
    pub yahoo_close_bar: bool,
    /// How Yahoo shows the bar whose period holds the clock.
    pub yahoo_live_bar: LiveBar,
    /// Symbols whose Yahoo charts are quarterly (`dataGranularity` `3mo`) whatever the interval.
    pub coarse_symbols: BTreeSet<String>,
    /// Multiplies a symbol's prices (both providers), e.g. 0.01 for sub-dollar split-adjusted
    /// prices.
    pub price_scale: BTreeMap<String, Scale>,
    /// Symbols Polygon's grouped daily answers list besides the built-in universe
    /// ([`crate::GROUPED_UNIVERSE`] and `SYN0000`..`SYN0999`). Never listed whatever this says:
    /// `unknown_symbols`, and symbols with an exchange suffix (`SAP.DE`: not a US stock).
    pub grouped_symbols: BTreeSet<String>,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            rate_limit: None,
            yahoo_retry_after: false,
            latency_ms: 0,
            fail_every_nth: None,
            fail_status: 503,
            fail_kind: FailKind::Status,
            fail_slow_ms: 30_000,
            malformed_symbols: BTreeSet::new(),
            malformed_all: false,
            unknown_symbols: BTreeSet::new(),
            null_symbols: BTreeSet::new(),
            null_every_nth: 5,
            pad_range_days: 0,
            polygon_page_size: None,
            polygon_status: "OK".to_string(),
            polygon_api_key: "test-key".to_string(),
            clock: None,
            yahoo_close_bar: true,
            yahoo_live_bar: LiveBar::AtClock,
            coarse_symbols: BTreeSet::new(),
            price_scale: BTreeMap::new(),
            grouped_symbols: BTreeSet::new(),
        }
    }
}

fn contains(set: &BTreeSet<String>, symbol: &str) -> bool {
    let wanted = canonical_symbol(symbol);
    set.iter().any(|s| canonical_symbol(s) == wanted)
}

impl Knobs {
    pub fn is_unknown(&self, symbol: &str) -> bool {
        contains(&self.unknown_symbols, symbol)
    }

    pub fn is_coarse(&self, symbol: &str) -> bool {
        contains(&self.coarse_symbols, symbol)
    }

    /// The `clock` knob, or the real time.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.unwrap_or_else(Utc::now)
    }

    /// The factor `symbol`'s prices are multiplied by (1 unless `price_scale` names it).
    pub fn scale(&self, symbol: &str) -> f64 {
        let wanted = canonical_symbol(symbol);
        self.price_scale
            .iter()
            .find(|(s, _)| canonical_symbol(s) == wanted)
            .map_or(1.0, |(_, scale)| scale.get())
    }

    pub fn is_malformed(&self, symbol: &str) -> bool {
        self.malformed_all || contains(&self.malformed_symbols, symbol)
    }

    /// Which OHLCV element (0 open … 4 volume) of a Yahoo bar is null, if any.
    pub fn null_element(&self, symbol: &str, ordinal: i64) -> Option<usize> {
        let n = i64::from(self.null_every_nth.max(1));
        if !contains(&self.null_symbols, symbol) || ordinal.rem_euclid(n) != 0 {
            return None;
        }
        // Rotate through the five arrays so every one of them gets nulls.
        usize::try_from((ordinal / n).rem_euclid(5)).ok()
    }

    /// Merges a partial JSON object into these knobs (top-level fields replace).
    pub fn merged(&self, patch: &serde_json::Value) -> Result<Knobs, String> {
        let serde_json::Value::Object(patch) = patch else {
            return Err("knobs must be a JSON object".to_string());
        };
        let mut current = serde_json::to_value(self).map_err(|e| e.to_string())?;
        if let serde_json::Value::Object(fields) = &mut current {
            for (k, v) in patch {
                fields.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(current).map_err(|e| format!("invalid knobs: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_patch_changes_only_the_fields_it_names() {
        let knobs = Knobs::default()
            .merged(&json!({"rate_limit": {"requests": 2, "retry_after": {"fixed": 7}}}))
            .unwrap();
        assert_eq!(
            knobs.rate_limit,
            Some(RateLimit {
                requests: 2,
                window_seconds: 60,
                retry_after: RetryAfter::Fixed(7),
                kind: WindowKind::Fixed,
            })
        );
        let sliding = knobs
            .merged(
                &json!({"rate_limit": {"requests": 5, "window_seconds": 10, "kind": "sliding"}}),
            )
            .unwrap();
        assert_eq!(
            sliding.rate_limit.map(|l| (l.kind, l.retry_after)),
            Some((WindowKind::Sliding, RetryAfter::UntilReset))
        );
        assert!(Knobs::default()
            .merged(&json!({"rate_limit": {"requests": 5, "kind": "leaky"}}))
            .is_err());
        assert_eq!(knobs.polygon_api_key, "test-key");
        assert!(Knobs::default()
            .merged(&json!({"no_such_knob": 1}))
            .is_err());
        assert!(Knobs::default().merged(&json!([1])).is_err());
    }

    #[test]
    fn symbol_sets_match_either_class_share_spelling() {
        let knobs = Knobs {
            unknown_symbols: ["BRK.B".to_string()].into(),
            ..Knobs::default()
        };
        assert!(knobs.is_unknown("BRK-B"));
        assert!(knobs.is_unknown("brk.b"));
        assert!(!knobs.is_unknown("AAPL"));
    }

    #[test]
    fn new_knobs_merge_from_json_and_reject_bad_values() {
        let knobs = Knobs::default()
            .merged(&json!({
                "clock": "2026-03-10T12:48:24-04:00",
                "yahoo_close_bar": false,
                "yahoo_live_bar": "separate",
                "coarse_symbols": ["FUND"],
                "price_scale": {"BRK-B": 0.01}
            }))
            .unwrap();
        assert_eq!(
            knobs.clock.map(|c| c.to_rfc3339()),
            Some("2026-03-10T16:48:24+00:00".to_string())
        );
        assert_eq!(knobs.now(), knobs.clock.unwrap());
        assert!(!knobs.yahoo_close_bar);
        assert_eq!(knobs.yahoo_live_bar, LiveBar::Separate);
        assert!(knobs.is_coarse("fund"));
        assert_eq!(knobs.scale("BRK.B"), 0.01);
        assert_eq!(knobs.scale("AAPL"), 1.0);
        let json = serde_json::to_value(&knobs).unwrap();
        assert_eq!(json["clock"], json!("2026-03-10T16:48:24Z"));
        assert_eq!(json["price_scale"], json!({"BRK-B": 0.01}));
        assert_eq!(Knobs::default().merged(&json).unwrap(), knobs);
        // Back to real time.
        assert_eq!(knobs.merged(&json!({"clock": null})).unwrap().clock, None);
        for bad in [
            json!({"price_scale": {"X": 0}}),
            json!({"price_scale": {"X": -2.5}}),
            json!({"clock": "yesterday"}),
            json!({"yahoo_live_bar": "sometimes"}),
        ] {
            assert!(Knobs::default().merged(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn null_elements_hit_every_nth_ordinal_and_rotate_through_the_arrays() {
        let knobs = Knobs {
            null_symbols: ["AAPL".to_string()].into(),
            ..Knobs::default()
        };
        let hits: Vec<(i64, usize)> = (0..30)
            .filter_map(|o| knobs.null_element("AAPL", o).map(|e| (o, e)))
            .collect();
        assert_eq!(hits, [(0, 0), (5, 1), (10, 2), (15, 3), (20, 4), (25, 0)]);
        assert_eq!(knobs.null_element("MSFT", 0), None);
    }
}
