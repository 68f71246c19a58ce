//! Domain newtypes. Raw strings become these types once, at the edge (event parsing, CLI flags);
//! nothing inside the domain re-checks them.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::BackfillError;

/// A ticker symbol as the database and the user spell it (`AAPL`, `BRK.B`).
/// Upper-cased on parse; providers map it to their own spelling (Yahoo wants `BRK-B`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Symbol(String);

impl Symbol {
    pub const MAX_LEN: usize = 20;

    pub fn parse(raw: &str) -> Result<Self, BackfillError> {
        let s = raw.trim().to_ascii_uppercase();
        let valid_chars = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '^' | '='));
        let starts_well = s
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '^');
        if s.is_empty() || s.len() > Self::MAX_LEN || !valid_chars || !starts_well {
            return Err(BackfillError::InvalidInput(format!(
                "malformed symbol {raw:?}: expected 1-{} characters of A-Z, 0-9, '.', '-', '^', '='",
                Self::MAX_LEN
            )));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Symbol {
    type Error = BackfillError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Symbol> for String {
    fn from(value: Symbol) -> Self {
        value.0
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An inclusive range of calendar days, `start <= end` guaranteed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateRange {
    start: NaiveDate,
    end: NaiveDate,
}

impl DateRange {
    pub fn new(start: NaiveDate, end: NaiveDate) -> Result<Self, BackfillError> {
        if start > end {
            return Err(BackfillError::InvalidInput(format!(
                "start_date {start} is after end_date {end}"
            )));
        }
        Ok(Self { start, end })
    }

    pub fn start(&self) -> NaiveDate {
        self.start
    }

    pub fn end(&self) -> NaiveDate {
        self.end
    }

    /// First instant of `start`, UTC.
    pub fn start_instant(&self) -> DateTime<Utc> {
        Utc.from_utc_datetime(&self.start.and_time(chrono::NaiveTime::MIN))
    }

    /// First instant *after* `end` (exclusive upper bound), so day `end` is fully covered.
    pub fn end_exclusive_instant(&self) -> DateTime<Utc> {
        let next = self.end.succ_opt().unwrap_or(self.end);
        Utc.from_utc_datetime(&next.and_time(chrono::NaiveTime::MIN))
    }

    pub fn days(&self) -> i64 {
        (self.end - self.start).num_days() + 1
    }

    /// The instants `[from, to)` that hold the stored keys of this range's bars at `interval`.
    /// Intraday bars are selected by their UTC day. A daily bar is keyed at 00:00 of its trading
    /// day in the exchange's zone, which for day D lies between D-1 11:00 UTC (UTC+13, New
    /// Zealand in summer) and D 10:00 UTC (UTC-10): shifting the UTC days back by 13 hours holds
    /// exactly the range's days for every zone from UTC-10:59 to UTC+13, and no neighbour's.
    pub fn stored_window(&self, interval: Interval) -> (DateTime<Utc>, DateTime<Utc>) {
        let (from, to) = (self.start_instant(), self.end_exclusive_instant());
        match interval {
            Interval::Hour => (from, to),
            Interval::Day => {
                let shift = chrono::Duration::hours(13);
                (from - shift, to - shift)
            }
        }
    }
}

impl fmt::Display for DateRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..={}", self.start, self.end)
    }
}

/// The earliest day a run may start, whatever the provider: 1970-01-01, the Unix epoch.
///
/// Both providers take the window as Unix time (Yahoo's `period1`/`period2` in seconds,
/// Polygon's `from`/`to` in milliseconds), and issue 8 asks for anything earlier to be refused by
/// name: a start such as 1900-01-01 or 0001-01-01 is a slip of the keyboard far more often than a
/// wish, and taking it would plan millions of empty hours per ticker. Each provider may start
/// later still (`provider::yahoo::check_history`, `provider::polygon::check_history`).
pub const EARLIEST_START_DATE: NaiveDate =
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");

/// The range rule every provider shares: nothing before [`EARLIEST_START_DATE`].
pub fn check_not_before_epoch(range: &DateRange) -> Result<(), BackfillError> {
    if range.start() >= EARLIEST_START_DATE {
        return Ok(());
    }
    Err(BackfillError::InvalidInput(format!(
        "start_date {} is before {EARLIEST_START_DATE}: price history before 1970 is not supported; \
         use a start_date on or after {EARLIEST_START_DATE}",
        range.start()
    )))
}

/// Parses `YYYY-MM-DD` with a message naming the field.
pub fn parse_date(field: &str, raw: &str) -> Result<NaiveDate, BackfillError> {
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").map_err(|_| {
        BackfillError::InvalidInput(format!("{field} {raw:?} is not a date in YYYY-MM-DD form"))
    })
}

/// Bar size. Never changes silently: a run fetches exactly the interval it was created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Interval {
    #[default]
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

impl FromStr for Interval {
    type Err = BackfillError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "1h" => Ok(Interval::Hour),
            "1d" => Ok(Interval::Day),
            other => Err(BackfillError::InvalidInput(format!(
                "interval {other:?} is not supported: use \"1h\" or \"1d\""
            ))),
        }
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which price API a run uses. Stored with the run so a resume never switches source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    #[default]
    Yahoo,
    Polygon,
}

impl ProviderKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ProviderKind::Yahoo => "yahoo",
            ProviderKind::Polygon => "polygon",
        }
    }
}

impl FromStr for ProviderKind {
    type Err = BackfillError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "yahoo" => Ok(ProviderKind::Yahoo),
            "polygon" => Ok(ProviderKind::Polygon),
            other => Err(BackfillError::InvalidInput(format!(
                "provider {other:?} is not supported: use \"yahoo\" or \"polygon\""
            ))),
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a run fetches its bars, stored with the run so that every function (and a resume) works
/// the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// One ranged request per ticker (plus pages): the work unit is a ticker.
    #[default]
    PerTicker,
    /// Polygon's grouped daily endpoint, every US stock for one day per request: the work unit
    /// is a day (`backfill_day`), and tickers are settled once every day is done.
    Grouped,
}

impl Strategy {
    pub fn as_str(&self) -> &'static str {
        match self {
            Strategy::PerTicker => "per-ticker",
            Strategy::Grouped => "grouped",
        }
    }
}

impl FromStr for Strategy {
    type Err = BackfillError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "per-ticker" => Ok(Strategy::PerTicker),
            "grouped" => Ok(Strategy::Grouped),
            other => Err(BackfillError::InvalidInput(format!(
                "strategy {other:?} is not supported: use \"per-ticker\" or \"grouped\""
            ))),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The strategy a request asks for: one of [`Strategy`], or `auto` (the default), which picks
/// the one with fewer provider calls (see [`choose_strategy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyRequest {
    #[default]
    Auto,
    PerTicker,
    Grouped,
}

impl StrategyRequest {
    pub fn as_str(&self) -> &'static str {
        match self {
            StrategyRequest::Auto => "auto",
            StrategyRequest::PerTicker => "per-ticker",
            StrategyRequest::Grouped => "grouped",
        }
    }

    /// Refuses what can never work, before anything is written: the grouped endpoint is
    /// Polygon's, and serves daily bars only.
    pub fn check(&self, provider: ProviderKind, interval: Interval) -> Result<(), BackfillError> {
        if *self != StrategyRequest::Grouped {
            return Ok(());
        }
        if provider != ProviderKind::Polygon {
            return Err(BackfillError::InvalidInput(format!(
                "strategy \"grouped\" needs provider polygon (its grouped daily endpoint); \
                 provider {provider} has none: use strategy \"per-ticker\" or \"auto\", or provider polygon"
            )));
        }
        if interval != Interval::Day {
            return Err(BackfillError::InvalidInput(format!(
                "strategy \"grouped\" fetches daily bars only, and the interval is {interval}: \
                 use interval 1d, or strategy \"per-ticker\" or \"auto\""
            )));
        }
        Ok(())
    }
}

impl FromStr for StrategyRequest {
    type Err = BackfillError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(StrategyRequest::Auto),
            "per-ticker" => Ok(StrategyRequest::PerTicker),
            "grouped" => Ok(StrategyRequest::Grouped),
            other => Err(BackfillError::InvalidInput(format!(
                "strategy {other:?} is not supported: use \"per-ticker\", \"grouped\" or \"auto\""
            ))),
        }
    }
}

impl fmt::Display for StrategyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Weekdays (Monday to Friday) of `range`: the days the grouped strategy asks for. Exchange
/// holidays are not known here, so each one costs one call that answers `resultsCount: 0`
/// (about 9 a year on US exchanges).
pub fn weekdays(range: &DateRange) -> Vec<NaiveDate> {
    use chrono::{Datelike, Weekday};
    range
        .start()
        .iter_days()
        .take_while(|d| *d <= range.end())
        .filter(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
        .collect()
}

/// The strategy picked for a run, and why (for `backfill plan` and the logs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StrategyDecision {
    pub strategy: Strategy,
    /// Weekdays of the window: the grouped strategy's calls.
    pub trading_days: i64,
    pub tickers: i64,
    /// Calls with the strategy picked (first pages only for per-ticker).
    pub calls: i64,
    /// Calls with the other strategy, where it is possible.
    pub alternative_calls: Option<i64>,
    pub reason: String,
}

/// Picks a run's strategy. `auto` is grouped iff the provider is Polygon, the interval 1d and the
/// window has fewer weekdays than the run has tickers: then one call per day beats one (at least)
/// per ticker. An explicit `grouped` on Yahoo or 1h is `InvalidInput` ([`StrategyRequest::check`]).
pub fn choose_strategy(
    requested: StrategyRequest,
    provider: ProviderKind,
    interval: Interval,
    range: &DateRange,
    tickers: usize,
) -> Result<StrategyDecision, BackfillError> {
    requested.check(provider, interval)?;
    let trading_days = weekdays(range).len() as i64;
    if requested == StrategyRequest::Grouped && trading_days == 0 {
        return Err(BackfillError::InvalidInput(format!(
            "strategy \"grouped\" fetches weekdays, and {range} has none: widen the window or use strategy \"per-ticker\""
        )));
    }
    let tickers = tickers as i64;
    let possible = provider == ProviderKind::Polygon && interval == Interval::Day;
    let decision = |strategy: Strategy, reason: String| {
        let (calls, alternative) = match strategy {
            Strategy::Grouped => (trading_days, Some(tickers)),
            Strategy::PerTicker => (tickers, possible.then_some(trading_days)),
        };
        StrategyDecision {
            strategy,
            trading_days,
            tickers,
            calls,
            alternative_calls: alternative,
            reason,
        }
    };
    Ok(match requested {
        StrategyRequest::Grouped => decision(
            Strategy::Grouped,
            format!(
                "grouped (asked for): {trading_days} trading days, {trading_days} calls instead of {tickers}"
            ),
        ),
        StrategyRequest::PerTicker => decision(
            Strategy::PerTicker,
            format!("per-ticker (asked for): {tickers} tickers, one ranged request each"),
        ),
        StrategyRequest::Auto if !possible => decision(
            Strategy::PerTicker,
            format!(
                "per-ticker: the grouped daily endpoint needs provider polygon and interval 1d \
                 (this run: {provider}, {interval})"
            ),
        ),
        StrategyRequest::Auto if 0 < trading_days && trading_days < tickers => decision(
            Strategy::Grouped,
            format!(
                "grouped: {trading_days} trading days < {tickers} tickers: {trading_days} calls instead of {tickers}"
            ),
        ),
        StrategyRequest::Auto => decision(
            Strategy::PerTicker,
            format!(
                "per-ticker: {trading_days} trading days >= {tickers} tickers: {tickers} calls instead of {trading_days}"
            ),
        ),
    })
}

/// Run identifier in the original job's format: `backfill-YYYYMMDD-HHMMSS-<8 hex>` (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

impl RunId {
    pub fn new_at(now: DateTime<Utc>) -> Self {
        let suffix: u32 = rand::rng().random();
        Self(format!(
            "backfill-{}-{suffix:08x}",
            now.format("%Y%m%d-%H%M%S")
        ))
    }

    pub fn new_now() -> Self {
        Self::new_at(Utc::now())
    }

    pub fn parse(raw: &str) -> Result<Self, BackfillError> {
        let bad = || {
            BackfillError::InvalidInput(format!(
                "run_id {raw:?} is malformed: expected backfill-YYYYMMDD-HHMMSS-<8 hex digits>"
            ))
        };
        let rest = raw.strip_prefix("backfill-").ok_or_else(bad)?;
        let (stamp, hex) = rest.rsplit_once('-').ok_or_else(bad)?;
        NaiveDateTime::parse_from_str(stamp, "%Y%m%d-%H%M%S").map_err(|_| bad())?;
        if stamp.len() != 15 || hex.len() != 8 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RunId {
    type Error = BackfillError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<RunId> for String {
    fn from(value: RunId) -> Self {
        value.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Step Functions execution name as this project's executions carry it (1–80 of letters,
/// digits, `-`, `_`): the execution that created a run, so that a run can be found from the
/// name a notification or the console shows (e.g. a scheduled `scheduled-<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ExecutionName(String);

impl ExecutionName {
    pub const MAX_LEN: usize = 80;

    pub fn parse(raw: &str) -> Result<Self, BackfillError> {
        let ok = (1..=Self::MAX_LEN).contains(&raw.len())
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(Self(raw.to_string()))
        } else {
            Err(BackfillError::InvalidInput(format!(
                "execution_name {raw:?} is malformed: 1 to {} letters, digits, '-' or '_'",
                Self::MAX_LEN
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ExecutionName {
    type Error = BackfillError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ExecutionName> for String {
    fn from(value: ExecutionName) -> Self {
        value.0
    }
}

impl fmt::Display for ExecutionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One OHLCV bar, stamped at its start instant in UTC. Only `close` is required by the schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    pub ts: DateTime<Utc>,
    pub open: Option<f64>,
    pub high: Option<f64>,
    pub low: Option<f64>,
    pub close: f64,
    pub volume: Option<i64>,
}

/// Per-ticker status words, kept from the original job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TickerStatus {
    Pending,
    Success,
    Failed,
    RateLimited,
}

impl TickerStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            TickerStatus::Pending => "pending",
            TickerStatus::Success => "success",
            TickerStatus::Failed => "failed",
            TickerStatus::RateLimited => "rate_limited",
        }
    }
}

impl FromStr for TickerStatus {
    type Err = BackfillError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(Self::Pending),
            "success" => Ok(Self::Success),
            "failed" => Ok(Self::Failed),
            "rate_limited" => Ok(Self::RateLimited),
            other => Err(BackfillError::InvalidInput(format!(
                "unknown ticker status {other:?}"
            ))),
        }
    }
}

/// Which tickers of an existing run a resume works on again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Reprocess {
    /// Every ticker not yet `success`.
    #[default]
    Incomplete,
    /// Every ticker, refreshing bars already stored.
    All,
}

impl Reprocess {
    pub fn as_str(&self) -> &'static str {
        match self {
            Reprocess::Incomplete => "incomplete",
            Reprocess::All => "all",
        }
    }
}

impl FromStr for Reprocess {
    type Err = BackfillError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "incomplete" => Ok(Self::Incomplete),
            "all" => Ok(Self::All),
            other => Err(BackfillError::InvalidInput(format!(
                "reprocess {other:?} is not supported: use \"incomplete\" or \"all\""
            ))),
        }
    }
}

/// How a run chose its tickers; stored with the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Selection {
    /// The original semantics: tickers with at least `min_articles` mentions, by symbol.
    /// Mentions count all time unless `within_days` limits them to the last N days.
    MinArticles {
        min_articles: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        within_days: Option<i64>,
    },
    /// The `n` most-mentioned tickers (with at least `min_articles` mentions), ties broken by
    /// symbol; the original's test mode is `n = 5, within_days = 7`.
    TopN {
        n: i64,
        min_articles: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        within_days: Option<i64>,
    },
    /// Exactly these symbols.
    Explicit { symbols: Vec<Symbol> },
}

/// Today's date in UTC, the default `end_date`.
pub fn today_utc() -> NaiveDate {
    Utc::now().date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbol_parse_uppercases_and_accepts_class_shares() {
        assert_eq!(Symbol::parse(" brk.b ").unwrap().as_str(), "BRK.B");
        assert_eq!(Symbol::parse("^GSPC").unwrap().as_str(), "^GSPC");
    }

    #[test]
    fn symbol_parse_rejects_malformed() {
        for bad in [
            "",
            "AAPL MSFT",
            "A/B",
            "DROP;TABLE",
            ".X",
            "ABCDEFGHIJKLMNOPQRSTU",
        ] {
            let err = Symbol::parse(bad).unwrap_err();
            assert_eq!(err.name(), "InvalidInput", "{bad}");
        }
    }

    #[test]
    fn date_range_is_inclusive_and_ordered() {
        let d = |s| parse_date("d", s).unwrap();
        let r = DateRange::new(d("2026-03-09"), d("2026-03-11")).unwrap();
        assert_eq!(r.days(), 3);
        assert_eq!(
            r.end_exclusive_instant().to_rfc3339(),
            "2026-03-12T00:00:00+00:00"
        );
        assert_eq!(
            DateRange::new(d("2026-03-12"), d("2026-03-11"))
                .unwrap_err()
                .name(),
            "InvalidInput"
        );
        assert!(DateRange::new(d("2026-03-11"), d("2026-03-11")).is_ok());
    }

    #[test]
    fn the_daily_window_holds_each_days_midnight_in_every_exchange_zone_and_no_neighbours() {
        use chrono_tz::Tz;
        let d = |s| parse_date("d", s).unwrap();
        let range = DateRange::new(d("2026-03-09"), d("2026-03-11")).unwrap();
        let (from, to) = range.stored_window(Interval::Day);
        let zones: [Tz; 6] = [
            chrono_tz::Pacific::Honolulu,
            chrono_tz::America::New_York,
            chrono_tz::Europe::Berlin,
            chrono_tz::Asia::Tokyo,
            chrono_tz::Australia::Sydney,
            chrono_tz::Pacific::Auckland,
        ];
        for zone in zones {
            for day in d("2026-03-07").iter_days().take(7) {
                let key = zone
                    .from_local_datetime(&day.and_time(chrono::NaiveTime::MIN))
                    .unwrap()
                    .with_timezone(&Utc);
                let inside = key >= from && key < to;
                let in_range = day >= range.start() && day <= range.end();
                assert_eq!(inside, in_range, "{zone} {day}: key {key}");
            }
        }
        assert_eq!(
            range.stored_window(Interval::Hour),
            (range.start_instant(), range.end_exclusive_instant())
        );
    }

    #[test]
    fn run_id_round_trips_the_original_format() {
        let now = Utc.with_ymd_and_hms(2026, 3, 9, 14, 5, 7).unwrap();
        let id = RunId::new_at(now);
        assert!(id.as_str().starts_with("backfill-20260309-140507-"), "{id}");
        assert_eq!(RunId::parse(id.as_str()).unwrap(), id);
        for bad in [
            "backfill-20260309-140507",
            "backfill-20260309-140507-xyzxyzxy",
            "run-20260309-140507-0123abcd",
            "backfill-20261309-140507-0123abcd",
        ] {
            assert_eq!(
                RunId::parse(bad).unwrap_err().name(),
                "InvalidInput",
                "{bad}"
            );
        }
    }

    #[test]
    fn auto_picks_grouped_only_for_polygon_daily_with_fewer_days_than_tickers() {
        let d = |s| parse_date("d", s).unwrap();
        // 2026-03-09 (Mon) ..= 2026-03-15 (Sun): 5 weekdays.
        let week = DateRange::new(d("2026-03-09"), d("2026-03-15")).unwrap();
        let pick = |provider, interval, tickers| {
            choose_strategy(StrategyRequest::Auto, provider, interval, &week, tickers).unwrap()
        };
        let grouped = pick(ProviderKind::Polygon, Interval::Day, 12);
        assert_eq!(grouped.strategy, Strategy::Grouped);
        assert_eq!((grouped.trading_days, grouped.calls), (5, 5));
        assert_eq!(grouped.alternative_calls, Some(12));
        assert!(
            grouped.reason.contains("5 trading days < 12 tickers"),
            "{}",
            grouped.reason
        );
        // As many tickers as days: per ticker is no worse.
        assert_eq!(
            pick(ProviderKind::Polygon, Interval::Day, 5).strategy,
            Strategy::PerTicker
        );
        assert_eq!(
            pick(ProviderKind::Polygon, Interval::Hour, 500).strategy,
            Strategy::PerTicker
        );
        assert_eq!(
            pick(ProviderKind::Yahoo, Interval::Day, 500).strategy,
            Strategy::PerTicker
        );
        let forced = choose_strategy(
            StrategyRequest::Grouped,
            ProviderKind::Polygon,
            Interval::Day,
            &week,
            1,
        )
        .unwrap();
        assert_eq!((forced.strategy, forced.calls), (Strategy::Grouped, 5));
        let per = choose_strategy(
            StrategyRequest::PerTicker,
            ProviderKind::Polygon,
            Interval::Day,
            &week,
            500,
        )
        .unwrap();
        assert_eq!(per.strategy, Strategy::PerTicker);
    }

    #[test]
    fn grouped_on_yahoo_or_hourly_is_invalid_input_that_says_why() {
        let d = |s| parse_date("d", s).unwrap();
        let week = DateRange::new(d("2026-03-09"), d("2026-03-13")).unwrap();
        for (provider, interval, says) in [
            (ProviderKind::Yahoo, Interval::Day, "needs provider polygon"),
            (ProviderKind::Polygon, Interval::Hour, "daily bars only"),
        ] {
            let e = choose_strategy(StrategyRequest::Grouped, provider, interval, &week, 100)
                .unwrap_err();
            assert_eq!(e.name(), "InvalidInput");
            assert!(e.to_string().contains(says), "{e}");
        }
        assert!("sometimes".parse::<StrategyRequest>().is_err());
        assert_eq!("grouped".parse::<Strategy>().unwrap(), Strategy::Grouped);
        assert_eq!(
            serde_json::to_value(StrategyRequest::PerTicker).unwrap(),
            serde_json::json!("per-ticker")
        );
    }

    #[test]
    fn weekdays_skip_weekends_only() {
        let d = |s| parse_date("d", s).unwrap();
        // Two years from a Monday: 104 weeks of 5 weekdays, holidays included.
        let two_years = DateRange::new(d("2024-01-01"), d("2025-12-28")).unwrap();
        assert_eq!(weekdays(&two_years).len(), 520);
        let weekend = DateRange::new(d("2026-03-14"), d("2026-03-15")).unwrap();
        assert!(weekdays(&weekend).is_empty());
    }

    #[test]
    fn interval_and_provider_parse_only_known_words() {
        assert_eq!("1h".parse::<Interval>().unwrap(), Interval::Hour);
        assert_eq!("1d".parse::<Interval>().unwrap(), Interval::Day);
        assert!("5m".parse::<Interval>().is_err());
        assert_eq!(
            "Polygon".parse::<ProviderKind>().unwrap(),
            ProviderKind::Polygon
        );
        assert!("alpaca".parse::<ProviderKind>().is_err());
    }
}
