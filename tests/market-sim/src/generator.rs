//! Deterministic synthetic bars.
//!
//! A bar's values depend only on (symbol, provider convention, interval, bar start), never on
//! the requested range, so overlapping requests agree and the ground truth is the same function.
//! Only `+ - * /` on `f64` are used (no `sin`/`exp` from the platform's libm), so the numbers are
//! the same on every machine.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::America::New_York;
use serde::{Deserialize, Serialize};

/// Which provider's wire format and bar-stamping convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Regular session only: 1h bars at 09:30, 10:30, …, 15:30 ET; 1d bars stamped 09:30 ET.
    Yahoo,
    /// Extended hours: 1h bars at every full hour 04:00–19:00 ET; 1d bars stamped at midnight ET.
    Polygon,
}

impl Provider {
    pub fn as_str(&self) -> &'static str {
        match self {
            Provider::Yahoo => "yahoo",
            Provider::Polygon => "polygon",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "yahoo" => Ok(Provider::Yahoo),
            "polygon" => Ok(Provider::Polygon),
            other => Err(format!("unknown provider {other:?}: use yahoo or polygon")),
        }
    }
}

/// Bar size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Interval {
    #[serde(rename = "1h")]
    Hour,
    #[serde(rename = "1d")]
    Day,
}

impl Interval {
    pub fn as_str(&self) -> &'static str {
        match self {
            Interval::Hour => "1h",
            Interval::Day => "1d",
        }
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Interval {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "1h" => Ok(Interval::Hour),
            "1d" => Ok(Interval::Day),
            other => Err(format!("unknown interval {other:?}: use 1h or 1d")),
        }
    }
}

/// One synthetic bar, before any knob (nulls, unknown symbols) is applied.
#[derive(Debug, Clone, PartialEq)]
pub struct SimBar {
    /// Start of the bar, as the provider stamps it.
    pub ts: DateTime<Utc>,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: i64,
    /// Polygon's volume-weighted average price.
    pub vwap: f64,
    /// Polygon's number of transactions.
    pub transactions: i64,
    /// Position of the bar's slot in a calendar that starts at 1970-01-01 (weekends included), so
    /// "every n-th bar" rules give the same answer whatever range is requested.
    pub ordinal: i64,
}

/// The symbol spelling that seeds the series: upper case, `-` read as `.`, so Yahoo's `BRK-B` and
/// Polygon's `BRK.B` are the same security.
pub fn canonical_symbol(symbol: &str) -> String {
    symbol.trim().to_ascii_uppercase().replace('-', ".")
}

/// FNV-1a, 64 bit: a stable hash (std's `DefaultHasher` may change between Rust releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// SplitMix64 finaliser: turns (seed, input) into well-mixed bits.
fn mix(seed: u64, input: u64) -> u64 {
    let mut z = seed ^ input.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A number in [0, 1) from (seed, input).
fn unit(seed: u64, input: u64) -> f64 {
    (mix(seed, input) >> 11) as f64 / (1u64 << 53) as f64
}

/// Triangle wave in [-1, 1] with the given period: smooth enough for a price path and built from
/// exactly rounded arithmetic only.
fn triangle(t: f64, period: f64, phase: f64) -> f64 {
    let x = t / period + phase;
    let frac = x - x.floor();
    1.0 - 4.0 * (frac - 0.5).abs()
}

pub fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// The price path of one security.
struct Series {
    seed: u64,
    base: f64,
    hourly_volume: f64,
}

impl Series {
    fn new(symbol: &str) -> Self {
        let seed = fnv1a(canonical_symbol(symbol).as_bytes());
        Self {
            seed,
            // 20 to 500 currency units.
            base: 20.0 + (seed % 48_000) as f64 / 100.0,
            // 50k to 2M shares an hour.
            hourly_volume: 50_000.0 + (mix(seed, 1) % 1_950_000) as f64,
        }
    }

    /// Price at instant `t` (epoch seconds). Always ≥ 0.83 × base > 0.
    fn price(&self, t: i64) -> f64 {
        let t = t as f64;
        let slow = triangle(t, 61.0 * 86_400.0, unit(self.seed, 2));
        let fast = triangle(t, 5.3 * 86_400.0, unit(self.seed, 3));
        let noise = unit(self.seed, t as u64) * 2.0 - 1.0;
        self.base * (1.0 + 0.12 * slow + 0.04 * fast + 0.004 * noise)
    }

    fn bar(&self, slot: &Slot) -> SimBar {
        let stamp = slot.ts.timestamp();
        let open = self.price(slot.price_from);
        let close = self.price(slot.price_to);
        let up = unit(self.seed, mix(stamp as u64, 11));
        let down = unit(self.seed, mix(stamp as u64, 13));
        let high = open.max(close) * (1.0 + 0.006 * up);
        let low = open.min(close) * (1.0 - 0.006 * down);
        let hours = (slot.price_to - slot.price_from) as f64 / 3600.0;
        let shape = 0.5 + unit(self.seed, mix(stamp as u64, 17));
        let volume = (self.hourly_volume * hours * shape).round() as i64;
        let (open, high, low, close) = (round4(open), round4(high), round4(low), round4(close));
        SimBar {
            ts: slot.ts,
            open,
            high,
            low,
            close,
            volume,
            // The mean of the four prices lies between low and high, as a VWAP must.
            vwap: round4((open + high + low + close) / 4.0),
            transactions: (volume / 150).max(1),
            ordinal: slot.ordinal,
        }
    }
}

/// Where a bar sits in time: its stamp, and the instants its open and close prices are read at.
struct Slot {
    ts: DateTime<Utc>,
    price_from: i64,
    price_to: i64,
    ordinal: i64,
}

/// The instant of local New York wall time `hh:mm` on `date`. None only for wall times a DST change
/// skips (02:00–03:00), which no bar uses.
fn new_york(date: NaiveDate, hour: u32, minute: u32) -> Option<DateTime<Utc>> {
    let local = date.and_time(NaiveTime::from_hms_opt(hour, minute, 0)?);
    New_York
        .from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

fn days_since_epoch(date: NaiveDate) -> i64 {
    (date - NaiveDate::default()).num_days()
}

/// The slots of one New York trading day (weekdays only; holidays are not modelled).
fn slots_of_day(provider: Provider, interval: Interval, date: NaiveDate) -> Vec<Slot> {
    if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
        return Vec::new();
    }
    let day = days_since_epoch(date);
    let mut slots = Vec::new();
    let mut push = |ts: Option<DateTime<Utc>>,
                    from: Option<DateTime<Utc>>,
                    to: Option<DateTime<Utc>>,
                    ordinal: i64| {
        if let (Some(ts), Some(from), Some(to)) = (ts, from, to) {
            slots.push(Slot {
                ts,
                price_from: from.timestamp(),
                price_to: to.timestamp(),
                ordinal,
            });
        }
    };
    match (provider, interval) {
        (Provider::Yahoo, Interval::Hour) => {
            // 09:30 … 15:30; the last bar is the half hour 15:30–16:00.
            for k in 0..7u32 {
                let start = new_york(date, 9 + k, 30);
                let end = if k == 6 {
                    new_york(date, 16, 0)
                } else {
                    new_york(date, 10 + k, 30)
                };
                push(start, start, end, day * 7 + i64::from(k));
            }
        }
        (Provider::Yahoo, Interval::Day) => {
            let start = new_york(date, 9, 30);
            push(start, start, new_york(date, 16, 0), day);
        }
        (Provider::Polygon, Interval::Hour) => {
            // 04:00 … 19:00, extended hours.
            for k in 0..16u32 {
                let start = new_york(date, 4 + k, 0);
                let end = start.map(|s| s + Duration::hours(1));
                push(start, start, end, day * 16 + i64::from(k));
            }
        }
        (Provider::Polygon, Interval::Day) => {
            // Stamped at midnight, priced over the extended session 04:00–20:00.
            push(
                new_york(date, 0, 0),
                new_york(date, 4, 0),
                new_york(date, 20, 0),
                day,
            );
        }
    }
    slots
}

/// Earliest and latest instants the generator serves; requests outside are clamped, so absurd
/// `period1`/`period2` values cannot make it loop for long.
fn clamp(t: DateTime<Utc>) -> DateTime<Utc> {
    let min = Utc.with_ymd_and_hms(1970, 1, 2, 0, 0, 0).single();
    let max = Utc.with_ymd_and_hms(2200, 1, 1, 0, 0, 0).single();
    match (min, max) {
        (Some(min), Some(max)) => t.clamp(min, max),
        _ => t,
    }
}

/// Every bar of `symbol` whose start lies in `[from, to)`, ascending.
pub fn bars(
    provider: Provider,
    symbol: &str,
    interval: Interval,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<SimBar> {
    let (from, to) = (clamp(from), clamp(to));
    if from >= to {
        return Vec::new();
    }
    let series = Series::new(symbol);
    // A New York day can start on the previous UTC day and end on the next: widen by one day.
    let first = from.with_timezone(&New_York).date_naive() - Duration::days(1);
    let last = to.with_timezone(&New_York).date_naive() + Duration::days(1);
    first
        .iter_days()
        .take_while(|d| *d <= last)
        .flat_map(|d| slots_of_day(provider, interval, d))
        .filter(|s| s.ts >= from && s.ts < to)
        .map(|s| series.bar(&s))
        .collect()
}

/// The price of `symbol` at `t`, rounded (Yahoo's `regularMarketPrice`).
pub fn price_at(symbol: &str, t: DateTime<Utc>) -> f64 {
    round4(Series::new(symbol).price(t.timestamp()))
}

/// The UTC window `[start 00:00Z, end+1 00:00Z)` of inclusive calendar days.
pub fn utc_days(start: NaiveDate, end: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let next = end.succ_opt().unwrap_or(end);
    (
        Utc.from_utc_datetime(&start.and_time(NaiveTime::MIN)),
        Utc.from_utc_datetime(&next.and_time(NaiveTime::MIN)),
    )
}

/// Midnight New York time at the start of `date` (Polygon's day boundaries).
pub fn new_york_midnight(date: NaiveDate) -> Option<DateTime<Utc>> {
    new_york(date, 0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn window(start: &str, end: &str) -> (DateTime<Utc>, DateTime<Utc>) {
        utc_days(day(start), day(end))
    }

    fn stamps(bars: &[SimBar]) -> Vec<String> {
        bars.iter()
            .map(|b| b.ts.format("%Y-%m-%dT%H:%MZ").to_string())
            .collect()
    }

    #[test]
    fn same_symbol_and_range_give_the_same_bars() {
        let (from, to) = window("2026-03-09", "2026-03-11");
        let a = bars(Provider::Yahoo, "AAPL", Interval::Hour, from, to);
        let b = bars(Provider::Yahoo, "AAPL", Interval::Hour, from, to);
        assert_eq!(a, b);
        assert_eq!(a.len(), 21);
        let other = bars(Provider::Yahoo, "MSFT", Interval::Hour, from, to);
        assert_ne!(a[0].close, other[0].close);
    }

    #[test]
    fn a_bar_does_not_depend_on_the_requested_range() {
        let (from, to) = window("2026-03-02", "2026-03-13");
        let wide = bars(Provider::Polygon, "AAPL", Interval::Hour, from, to);
        let (from, to) = window("2026-03-10", "2026-03-10");
        let narrow = bars(Provider::Polygon, "AAPL", Interval::Hour, from, to);
        assert!(!narrow.is_empty());
        for bar in &narrow {
            assert_eq!(wide.iter().find(|b| b.ts == bar.ts), Some(bar));
        }
    }

    #[test]
    fn only_weekdays_have_bars() {
        // A summer weekend: in winter Polygon's 19:00 EST Friday bar is Saturday 00:00Z.
        let (from, to) = window("2026-03-14", "2026-03-15");
        for provider in [Provider::Yahoo, Provider::Polygon] {
            for interval in [Interval::Hour, Interval::Day] {
                assert!(bars(provider, "AAPL", interval, from, to).is_empty());
            }
        }
        let (from, to) = window("2026-03-02", "2026-03-08");
        let daily = bars(Provider::Yahoo, "AAPL", Interval::Day, from, to);
        let weekdays: Vec<Weekday> = daily
            .iter()
            .map(|b| b.ts.with_timezone(&New_York).weekday())
            .collect();
        assert_eq!(
            weekdays,
            [
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri
            ]
        );
    }

    #[test]
    fn yahoo_hourly_bars_follow_new_york_time_across_the_dst_change() {
        // DST starts Sunday 2026-03-08: 09:30 ET is 14:30Z before and 13:30Z after.
        let (from, to) = window("2026-03-06", "2026-03-09");
        let got = stamps(&bars(Provider::Yahoo, "AAPL", Interval::Hour, from, to));
        assert_eq!(got.len(), 14);
        assert_eq!(got[0], "2026-03-06T14:30Z");
        assert_eq!(got[6], "2026-03-06T20:30Z");
        assert_eq!(got[7], "2026-03-09T13:30Z");
        assert_eq!(got[13], "2026-03-09T19:30Z");
    }

    #[test]
    fn yahoo_daily_bars_are_stamped_at_the_open() {
        let (from, to) = window("2026-03-06", "2026-03-09");
        let got = stamps(&bars(Provider::Yahoo, "AAPL", Interval::Day, from, to));
        assert_eq!(got, ["2026-03-06T14:30Z", "2026-03-09T13:30Z"]);
    }

    #[test]
    fn polygon_bars_cover_extended_hours_and_days_start_at_midnight_new_york() {
        let (from, to) = window("2026-03-10", "2026-03-10");
        let hourly = stamps(&bars(Provider::Polygon, "AAPL", Interval::Hour, from, to));
        // 04:00–19:00 EDT is 08:00Z–23:00Z: all 16 bars lie inside the UTC day.
        assert_eq!(hourly.len(), 16);
        assert_eq!(hourly[0], "2026-03-10T08:00Z");
        assert_eq!(hourly[15], "2026-03-10T23:00Z");
        let daily = stamps(&bars(Provider::Polygon, "AAPL", Interval::Day, from, to));
        assert_eq!(daily, ["2026-03-10T04:00Z"]);
        // In winter 19:00 EST is midnight UTC: that bar belongs to the next UTC day.
        let (from, to) = window("2026-01-06", "2026-01-06");
        let winter = stamps(&bars(Provider::Polygon, "AAPL", Interval::Hour, from, to));
        assert_eq!(winter.len(), 16);
        assert_eq!(winter[0], "2026-01-06T00:00Z");
        assert_eq!(winter[1], "2026-01-06T09:00Z");
    }

    #[test]
    fn prices_are_positive_consistent_and_rounded_to_four_decimals() {
        let (from, to) = window("2025-01-01", "2026-12-31");
        for symbol in ["AAPL", "BRK.B", "X", "^GSPC"] {
            for bar in bars(Provider::Polygon, symbol, Interval::Hour, from, to) {
                for p in [bar.open, bar.high, bar.low, bar.close, bar.vwap] {
                    assert!(p > 0.0, "{bar:?}");
                    assert_eq!(round4(p), p, "{bar:?}");
                }
                assert!(bar.low <= bar.open.min(bar.close), "{bar:?}");
                assert!(bar.high >= bar.open.max(bar.close), "{bar:?}");
                assert!(bar.low <= bar.vwap && bar.vwap <= bar.high, "{bar:?}");
                assert!(bar.volume > 0, "{bar:?}");
            }
        }
    }

    #[test]
    fn class_share_spellings_are_the_same_security() {
        let (from, to) = window("2026-03-09", "2026-03-09");
        assert_eq!(
            bars(Provider::Yahoo, "BRK-B", Interval::Hour, from, to),
            bars(Provider::Yahoo, "brk.b", Interval::Hour, from, to)
        );
    }

    #[test]
    fn absurd_ranges_are_clamped_not_looped_over() {
        let from = DateTime::<Utc>::MIN_UTC;
        let to = DateTime::<Utc>::MAX_UTC;
        // 230 years of daily bars: finishes quickly and stays within the clamp.
        let all = bars(Provider::Yahoo, "AAPL", Interval::Day, from, to);
        assert!(all.len() > 50_000);
    }
}
