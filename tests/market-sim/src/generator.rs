//! Deterministic synthetic bars.
//!
//! A bar's final values depend only on (symbol, provider convention, bar size, bar start), never
//! on the requested range, so overlapping requests agree and the ground truth is the same function.
//! A Yahoo bar whose period holds the clock is live: its values are those traded so far, a function
//! of the clock too. Only `+ - * /` on `f64` are used (no `sin`/`exp` from the platform's libm), so
//! the numbers are the same on every machine.
//!
//! Prices have full precision. Polygon's are the computed `f64`; Yahoo's pass through `f32`, as the
//! chart API's do (it prints float32 values as float64, e.g. `878.6199951171875`).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::exchange::{exchange_of, is_weekend, Exchange, Session, US};

/// Which provider's wire format and bar-stamping convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Regular session of the symbol's exchange: 1h bars at the open, open+1h, …; 1d bars stamped
    /// at the open (09:30 ET for US listings).
    Yahoo,
    /// US only, extended hours: 1h bars at every full hour 04:00–19:00 ET; 1d bars stamped at
    /// midnight ET.
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

/// The bar size of a Yahoo chart: the interval asked, or the quarter Yahoo answers with for some
/// symbols whatever was asked (`meta.dataGranularity` `3mo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Granularity {
    Hour,
    Day,
    /// Calendar quarters, stamped at the open of the quarter's first trading day.
    Quarter,
}

impl Granularity {
    /// Yahoo's spelling in `meta.dataGranularity`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Granularity::Hour => "1h",
            Granularity::Day => "1d",
            Granularity::Quarter => "3mo",
        }
    }
}

impl From<Interval> for Granularity {
    fn from(interval: Interval) -> Self {
        match interval {
            Interval::Hour => Granularity::Hour,
            Interval::Day => Granularity::Day,
        }
    }
}

/// One synthetic bar, before any knob (nulls, unknown symbols) is applied.
#[derive(Debug, Clone, PartialEq)]
pub struct SimBar {
    /// Start of the bar, as the provider stamps it.
    pub ts: DateTime<Utc>,
    /// End of the bar's period: its values are final from then on. A bar served with `end` after
    /// the clock is live (Yahoo only).
    pub end: DateTime<Utc>,
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

impl SimBar {
    /// Multiplies the prices by `scale` and, for Yahoo, rounds them through `f32` as Yahoo does.
    /// Both are monotonic, so `low <= open, close <= high` survives.
    fn on_the_wire(mut self, provider: Provider, scale: f64) -> SimBar {
        let wire = |x: f64| match provider {
            Provider::Yahoo => yahoo_float(x * scale),
            Provider::Polygon => x * scale,
        };
        self.open = wire(self.open);
        self.high = wire(self.high);
        self.low = wire(self.low);
        self.close = wire(self.close);
        self.vwap = wire(self.vwap);
        self
    }
}

/// The symbol spelling that seeds the series: upper case, `-` read as `.`, so Yahoo's `BRK-B` and
/// Polygon's `BRK.B` are the same security.
pub fn canonical_symbol(symbol: &str) -> String {
    symbol.trim().to_ascii_uppercase().replace('-', ".")
}

/// A price as Yahoo's chart JSON carries it: the nearest `f32`, printed as `f64`.
pub fn yahoo_float(x: f64) -> f64 {
    f64::from(x as f32)
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

    /// The bar of `slot` as it stands at `until` (epoch seconds, clamped to the slot): its final
    /// values when `until` is the slot's end. High and low widen and volume grows with the part of
    /// the period that has traded.
    fn bar(&self, slot: &Slot, until: i64) -> SimBar {
        let stamp = slot.ts.timestamp();
        let span = (slot.price_to - slot.price_from).max(1);
        let until = until.clamp(slot.price_from, slot.price_to);
        let done = (until - slot.price_from) as f64 / span as f64;
        let open = self.price(slot.price_from);
        let close = self.price(until);
        let up = unit(self.seed, mix(stamp as u64, 11));
        let down = unit(self.seed, mix(stamp as u64, 13));
        let high = open.max(close) * (1.0 + 0.006 * up * done);
        let low = open.min(close) * (1.0 - 0.006 * down * done);
        let hours = span as f64 / 3600.0;
        let shape = 0.5 + unit(self.seed, mix(stamp as u64, 17));
        let volume = (self.hourly_volume * hours * shape * done).round() as i64;
        SimBar {
            ts: slot.ts,
            end: slot.end,
            open,
            high,
            low,
            close,
            volume,
            // The mean of the four prices lies between low and high, as a VWAP must.
            vwap: (open + high + low + close) / 4.0,
            transactions: (volume / 150).max(1),
            ordinal: slot.ordinal,
        }
    }

    /// The bar of `slot` as it stands at `clock`: nothing before the slot starts, the values so far
    /// while it runs, the final ones after; `None` = final.
    fn bar_at(&self, slot: &Slot, clock: Option<DateTime<Utc>>) -> Option<SimBar> {
        match clock {
            Some(now) if now <= slot.ts => None,
            Some(now) => Some(self.bar(slot, now.timestamp())),
            None => Some(self.bar(slot, slot.price_to)),
        }
    }
}

/// Where a bar sits in time: its stamp, the end of its period, and the instants its open and
/// close prices are read at.
struct Slot {
    ts: DateTime<Utc>,
    end: DateTime<Utc>,
    price_from: i64,
    price_to: i64,
    ordinal: i64,
}

impl Slot {
    /// A bar stamped at its start and priced over `[start, end)`.
    fn span(start: DateTime<Utc>, end: DateTime<Utc>, ordinal: i64) -> Slot {
        Slot {
            ts: start,
            end,
            price_from: start.timestamp(),
            price_to: end.timestamp(),
            ordinal,
        }
    }
}

fn days_since_epoch(date: NaiveDate) -> i64 {
    (date - NaiveDate::default()).num_days()
}

/// Yahoo's slots of one local trading day on `exchange`: hourly from the open (the last one ends
/// at the close, possibly short of an hour), or one daily bar stamped at the open.
fn yahoo_slots(exchange: &Exchange, granularity: Granularity, date: NaiveDate) -> Vec<Slot> {
    let Some(session) = exchange.session(date) else {
        return Vec::new();
    };
    let day = days_since_epoch(date);
    match granularity {
        Granularity::Hour => {
            let n = exchange.hourly_bars_per_day();
            (0..n)
                .map(|k| {
                    let start = session.open + Duration::hours(i64::from(k));
                    let end = (start + Duration::hours(1)).min(session.close);
                    Slot::span(start, end, day * i64::from(n) + i64::from(k))
                })
                .collect()
        }
        Granularity::Day | Granularity::Quarter => vec![daily_slot(&session)],
    }
}

fn daily_slot(session: &Session) -> Slot {
    Slot::span(session.open, session.close, days_since_epoch(session.date))
}

/// Polygon's slots of one New York day (weekdays only; holidays are not modelled).
fn polygon_slots(interval: Interval, date: NaiveDate) -> Vec<Slot> {
    if is_weekend(date) {
        return Vec::new();
    }
    let day = days_since_epoch(date);
    let ny = |hour: u32| US.at(date, (hour, 0));
    match interval {
        // 04:00 … 19:00, extended hours.
        Interval::Hour => (0..16u32)
            .filter_map(|k| {
                let start = ny(4 + k)?;
                Some(Slot::span(
                    start,
                    start + Duration::hours(1),
                    day * 16 + i64::from(k),
                ))
            })
            .collect(),
        // Stamped at midnight, priced over the extended session 04:00–20:00.
        Interval::Day => match (ny(0), ny(4), ny(20)) {
            (Some(midnight), Some(from), Some(to)) => vec![Slot {
                ts: midnight,
                end: to,
                price_from: from.timestamp(),
                price_to: to.timestamp(),
                ordinal: day,
            }],
            _ => Vec::new(),
        },
    }
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

/// Every bar of `symbol` whose start lies in `[from, to)`, ascending, with final values and
/// unscaled prices (Yahoo's through `f32`).
pub fn bars(
    provider: Provider,
    symbol: &str,
    interval: Interval,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<SimBar> {
    match provider {
        Provider::Yahoo => yahoo_bars(symbol, interval.into(), from, to, 1.0, None),
        Provider::Polygon => polygon_bars(symbol, interval, from, to, 1.0),
    }
}

/// Polygon's bars of `symbol` (US hours whatever the symbol) with a start in `[from, to)`,
/// prices multiplied by `scale`.
pub fn polygon_bars(
    symbol: &str,
    interval: Interval,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    scale: f64,
) -> Vec<SimBar> {
    let (from, to) = (clamp(from), clamp(to));
    if from >= to {
        return Vec::new();
    }
    let series = Series::new(symbol);
    // A New York day can start on the previous UTC day and end on the next: widen by one day.
    let first = US.local_date(from) - Duration::days(1);
    let last = US.local_date(to) + Duration::days(1);
    first
        .iter_days()
        .take_while(|d| *d <= last)
        .flat_map(|d| polygon_slots(interval, d))
        .filter(|s| s.ts >= from && s.ts < to)
        .map(|s| {
            series
                .bar(&s, s.price_to)
                .on_the_wire(Provider::Polygon, scale)
        })
        .collect()
}

/// Yahoo's bars of `symbol`, on its exchange, with a start in `[from, to)`, prices multiplied by
/// `scale` and rounded through `f32`, as they stand at `clock`: bars starting at or after the
/// clock are not there yet, and the bar whose period holds the clock has the values traded so far
/// (its `end` is after the clock). `clock` None: every bar final.
///
/// Quarterly bars cover the calendar quarters whose trading overlaps `[from, to)`, even when they
/// start before `from`; they aggregate the quarter's daily bars.
pub fn yahoo_bars(
    symbol: &str,
    granularity: Granularity,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    scale: f64,
    clock: Option<DateTime<Utc>>,
) -> Vec<SimBar> {
    let (from, to) = (clamp(from), clamp(to));
    if from >= to {
        return Vec::new();
    }
    let exchange = exchange_of(symbol);
    let series = Series::new(symbol);
    let bars = if granularity == Granularity::Quarter {
        quarter_bars(&series, exchange, from, to, clock)
    } else {
        // A local day can start on the previous UTC day and end on the next: widen by one day.
        let first = exchange.local_date(from) - Duration::days(1);
        let last = exchange.local_date(to) + Duration::days(1);
        first
            .iter_days()
            .take_while(|d| *d <= last)
            .flat_map(|d| yahoo_slots(exchange, granularity, d))
            .filter(|s| s.ts >= from && s.ts < to)
            .filter_map(|s| series.bar_at(&s, clock))
            .collect()
    };
    bars.into_iter()
        .map(|b| b.on_the_wire(Provider::Yahoo, scale))
        .collect()
}

/// The first day of the calendar quarter holding `date`.
fn quarter_start(date: NaiveDate) -> NaiveDate {
    let month = (date.month0() / 3) * 3 + 1;
    NaiveDate::from_ymd_opt(date.year(), month, 1).unwrap_or(date)
}

fn next_quarter(start: NaiveDate) -> NaiveDate {
    start
        .checked_add_months(chrono::Months::new(3))
        .unwrap_or(NaiveDate::MAX)
}

fn quarter_bars(
    series: &Series,
    exchange: &Exchange,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    clock: Option<DateTime<Utc>>,
) -> Vec<SimBar> {
    let last_day = exchange.local_date(to);
    let mut quarter = quarter_start(exchange.local_date(from));
    let mut out = Vec::new();
    while quarter <= last_day {
        let next = next_quarter(quarter);
        let sessions: Vec<Session> = quarter
            .iter_days()
            .take_while(|d| *d < next)
            .filter_map(|d| exchange.session(d))
            .collect();
        let ordinal = i64::from(quarter.year()) * 4 + i64::from(quarter.month0() / 3);
        quarter = next;
        let (Some(first), Some(last)) = (sessions.first(), sessions.last()) else {
            continue;
        };
        if first.open >= to || last.close <= from {
            continue;
        }
        let daily: Vec<SimBar> = sessions
            .iter()
            .filter_map(|s| series.bar_at(&daily_slot(s), clock))
            .collect();
        let (Some(open), Some(close)) = (daily.first(), daily.last()) else {
            continue;
        };
        let high = daily.iter().map(|b| b.high).fold(f64::MIN, f64::max);
        let low = daily.iter().map(|b| b.low).fold(f64::MAX, f64::min);
        out.push(SimBar {
            ts: first.open,
            end: last.close,
            open: open.open,
            high,
            low,
            close: close.close,
            volume: daily.iter().map(|b| b.volume).sum(),
            vwap: (open.open + high + low + close.close) / 4.0,
            transactions: daily.iter().map(|b| b.transactions).sum(),
            ordinal,
        });
    }
    out
}

/// The price of `symbol` at `t`, unscaled, in full precision (Yahoo's `regularMarketPrice`).
pub fn price_at(symbol: &str, t: DateTime<Utc>) -> f64 {
    Series::new(symbol).price(t.timestamp())
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
    US.midnight(date)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Weekday;
    use chrono_tz::America::New_York;

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
    fn prices_are_positive_consistent_and_full_precision() {
        let (from, to) = window("2025-01-01", "2026-12-31");
        let mut beyond_four_decimals = 0;
        let mut total = 0;
        for symbol in ["AAPL", "BRK.B", "X", "^GSPC"] {
            for bar in bars(Provider::Polygon, symbol, Interval::Hour, from, to) {
                for p in [bar.open, bar.high, bar.low, bar.close, bar.vwap] {
                    assert!(p > 0.0, "{bar:?}");
                    total += 1;
                    beyond_four_decimals += usize::from((p * 10_000.0).round() / 10_000.0 != p);
                }
                assert!(bar.low <= bar.open.min(bar.close), "{bar:?}");
                assert!(bar.high >= bar.open.max(bar.close), "{bar:?}");
                assert!(bar.low <= bar.vwap && bar.vwap <= bar.high, "{bar:?}");
                assert!(bar.volume > 0, "{bar:?}");
            }
        }
        // No rounding: practically every Polygon price needs more than four decimals.
        assert!(
            beyond_four_decimals * 100 > total * 99,
            "{beyond_four_decimals}/{total}"
        );
    }

    #[test]
    fn yahoo_prices_are_float32_values_and_stay_consistent() {
        let (from, to) = window("2026-01-01", "2026-03-31");
        for symbol in ["AAPL", "SAP.DE", "7203.T"] {
            for bar in bars(Provider::Yahoo, symbol, Interval::Hour, from, to) {
                for p in [bar.open, bar.high, bar.low, bar.close] {
                    assert_eq!(yahoo_float(p), p, "{bar:?}");
                }
                assert!(bar.low <= bar.open.min(bar.close), "{bar:?}");
                assert!(bar.high >= bar.open.max(bar.close), "{bar:?}");
            }
        }
    }

    #[test]
    fn a_scale_multiplies_the_prices_and_nothing_else() {
        let (from, to) = window("2026-03-09", "2026-03-09");
        let plain = polygon_bars("AAPL", Interval::Hour, from, to, 1.0);
        let cents = polygon_bars("AAPL", Interval::Hour, from, to, 0.01);
        for (p, c) in plain.iter().zip(&cents) {
            assert_eq!(c.open, p.open * 0.01);
            assert_eq!(c.close, p.close * 0.01);
            assert_eq!((c.ts, c.volume), (p.ts, p.volume));
        }
        let yahoo = yahoo_bars("AAPL", Granularity::Hour, from, to, 0.01, None);
        assert!(
            yahoo.iter().all(|b| b.low > 0.1 && b.high < 5.0),
            "{yahoo:?}"
        );
    }

    #[test]
    fn each_exchange_has_hourly_bars_from_its_own_open_in_its_own_zone() {
        let cases = [
            // XETRA 09:00–17:30: nine bars, the last one 17:00–17:30. CET, then CEST.
            (
                "SAP.DE",
                "2026-03-27",
                9,
                "2026-03-27T08:00Z",
                "2026-03-27T16:00Z",
            ),
            (
                "SAP.DE",
                "2026-03-30",
                9,
                "2026-03-30T07:00Z",
                "2026-03-30T15:00Z",
            ),
            (
                "TSCO.L",
                "2026-03-27",
                9,
                "2026-03-27T08:00Z",
                "2026-03-27T16:00Z",
            ),
            (
                "TSCO.L",
                "2026-03-30",
                9,
                "2026-03-30T07:00Z",
                "2026-03-30T15:00Z",
            ),
            (
                "SHOP.TO",
                "2026-03-06",
                7,
                "2026-03-06T14:30Z",
                "2026-03-06T20:30Z",
            ),
            (
                "SHOP.TO",
                "2026-03-09",
                7,
                "2026-03-09T13:30Z",
                "2026-03-09T19:30Z",
            ),
            // Tokyo 09:00–15:30 JST is 00:00Z–06:30Z: the whole session lies in the UTC day.
            (
                "7203.T",
                "2026-03-30",
                7,
                "2026-03-30T00:00Z",
                "2026-03-30T06:00Z",
            ),
        ];
        for (symbol, date, n, first, last) in cases {
            let (from, to) = window(date, date);
            let got = stamps(&bars(Provider::Yahoo, symbol, Interval::Hour, from, to));
            assert_eq!(got.len(), n, "{symbol} {date}: {got:?}");
            assert_eq!(
                (got[0].as_str(), got[n - 1].as_str()),
                (first, last),
                "{symbol}"
            );
        }
        let (from, to) = window("2026-03-27", "2026-03-27");
        let last = bars(Provider::Yahoo, "SAP.DE", Interval::Hour, from, to)
            .pop()
            .unwrap();
        assert_eq!(last.end - last.ts, Duration::minutes(30));
    }

    #[test]
    fn yahoo_daily_bars_are_stamped_at_each_exchanges_local_open() {
        let (from, to) = window("2026-03-30", "2026-03-30");
        for (symbol, want) in [
            ("AAPL", "2026-03-30T13:30Z"),
            ("SAP.DE", "2026-03-30T07:00Z"),
            ("TSCO.L", "2026-03-30T07:00Z"),
            ("7203.T", "2026-03-30T00:00Z"),
        ] {
            let got = stamps(&bars(Provider::Yahoo, symbol, Interval::Day, from, to));
            assert_eq!(got, [want], "{symbol}");
        }
    }

    #[test]
    fn the_bar_holding_the_clock_has_what_has_traded_so_far() {
        let (from, to) = window("2026-03-10", "2026-03-10");
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let clock = at("2026-03-10T16:48:24Z");
        let live = yahoo_bars("AAPL", Granularity::Hour, from, to, 1.0, Some(clock));
        let done = yahoo_bars("AAPL", Granularity::Hour, from, to, 1.0, None);
        // 09:30, 10:30, 11:30 EDT are over; 12:30 holds the clock; later ones have not started.
        assert_eq!(live.len(), 4);
        assert_eq!(live[..3], done[..3]);
        let (now, fin) = (&live[3], &done[3]);
        assert_eq!((now.ts, now.end), (fin.ts, fin.end));
        assert!(now.end > clock);
        assert_eq!(now.open, fin.open);
        assert_eq!(now.close, yahoo_float(price_at("AAPL", clock)));
        assert!(now.low <= now.open.min(now.close) && now.high >= now.open.max(now.close));
        assert!(now.volume > 0 && now.volume < fin.volume, "{now:?} {fin:?}");
        // A clock exactly at a bar's end leaves it final; at its start, not there yet.
        let at_end = yahoo_bars("AAPL", Granularity::Hour, from, to, 1.0, Some(fin.end));
        assert_eq!(at_end.len(), 4);
        assert_eq!(at_end[3], *fin);
        let at_start = yahoo_bars("AAPL", Granularity::Hour, from, to, 1.0, Some(fin.ts));
        assert_eq!(at_start.len(), 3);
        // Daily bars too.
        let day = yahoo_bars("AAPL", Granularity::Day, from, to, 1.0, Some(clock));
        assert_eq!(day.len(), 1);
        assert_eq!(day[0].close, now.close);
        assert!(day[0].end > clock);
    }

    #[test]
    fn quarterly_bars_aggregate_the_quarters_daily_bars() {
        let (from, to) = window("2026-03-09", "2026-03-11");
        let quarters = yahoo_bars("AAPL", Granularity::Quarter, from, to, 1.0, None);
        assert_eq!(stamps(&quarters), ["2026-01-01T14:30Z"]);
        let q = &quarters[0];
        let (qf, qt) = window("2026-01-01", "2026-03-31");
        let days = yahoo_bars("AAPL", Granularity::Day, qf, qt, 1.0, None);
        assert_eq!(days.len(), 64);
        assert_eq!(q.open, days[0].open);
        assert_eq!(q.close, days[63].close);
        assert_eq!(q.volume, days.iter().map(|d| d.volume).sum::<i64>());
        assert!(days.iter().all(|d| d.low >= q.low && d.high <= q.high));
        assert_eq!(q.end, days[63].end);
        // A range across a quarter boundary gets both quarters.
        let (from, to) = window("2026-03-31", "2026-04-01");
        let both = yahoo_bars("SAP.DE", Granularity::Quarter, from, to, 1.0, None);
        assert_eq!(stamps(&both), ["2026-01-01T08:00Z", "2026-04-01T07:00Z"]);
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
