//! Exchanges by Yahoo suffix: time zone, regular session, currency and the names Yahoo's chart
//! `meta` gives them, and how Yahoo spells their symbols.
//!
//! Weekdays are trading days (no holidays); every session is one block (Tokyo's lunch break is not
//! modelled). Polygon is US-only and keeps New York time whatever the symbol.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Offset, TimeZone, Utc, Weekday};
use chrono_tz::{OffsetName, Tz};

/// An exchange as Yahoo describes it.
#[derive(Debug, PartialEq, Eq)]
pub struct Exchange {
    /// Yahoo's symbol suffix without the dot (`DE` in `SAP.DE`); empty for US listings.
    pub suffix: &'static str,
    pub zone: Tz,
    pub currency: &'static str,
    /// `meta.exchangeName`.
    pub exchange_name: &'static str,
    /// `meta.fullExchangeName`.
    pub full_exchange_name: &'static str,
    /// Regular session, local wall time.
    pub open: (u32, u32),
    pub close: (u32, u32),
    /// Start of `currentTradingPeriod.pre` and end of `.post`, local wall time; equal to the open
    /// and close where Yahoo reports empty pre/post periods.
    pub pre_start: (u32, u32),
    pub post_end: (u32, u32),
}

/// US listings (no suffix): Nasdaq/NYSE hours in New York time.
pub const US: Exchange = Exchange {
    suffix: "",
    zone: chrono_tz::America::New_York,
    currency: "USD",
    exchange_name: "NMS",
    full_exchange_name: "NasdaqGS",
    open: (9, 30),
    close: (16, 0),
    pre_start: (4, 0),
    post_end: (20, 0),
};

/// `.DE`: XETRA. Yahoo reports empty pre/post periods (`start == end`).
pub const XETRA: Exchange = Exchange {
    suffix: "DE",
    zone: chrono_tz::Europe::Berlin,
    currency: "EUR",
    exchange_name: "GER",
    full_exchange_name: "XETRA",
    open: (9, 0),
    close: (17, 30),
    pre_start: (9, 0),
    post_end: (17, 30),
};

/// `.TO`: Toronto Stock Exchange. Pre/post are reported empty here (not checked against Yahoo).
pub const TORONTO: Exchange = Exchange {
    suffix: "TO",
    zone: chrono_tz::America::Toronto,
    currency: "CAD",
    exchange_name: "TOR",
    full_exchange_name: "Toronto",
    open: (9, 30),
    close: (16, 0),
    pre_start: (9, 30),
    post_end: (16, 0),
};

/// `.T`: Tokyo (JPX). Yahoo reports empty pre/post periods.
pub const TOKYO: Exchange = Exchange {
    suffix: "T",
    zone: chrono_tz::Asia::Tokyo,
    currency: "JPY",
    exchange_name: "JPX",
    full_exchange_name: "Tokyo",
    open: (9, 0),
    close: (15, 30),
    pre_start: (9, 0),
    post_end: (15, 30),
};

/// `.L`: London Stock Exchange, quoted in pence (`GBp`).
pub const LONDON: Exchange = Exchange {
    suffix: "L",
    zone: chrono_tz::Europe::London,
    currency: "GBp",
    exchange_name: "LSE",
    full_exchange_name: "LSE",
    open: (8, 0),
    close: (16, 30),
    pre_start: (7, 15),
    post_end: (17, 15),
};

pub const EXCHANGES: [&Exchange; 5] = [&US, &XETRA, &TORONTO, &TOKYO, &LONDON];

/// One trading day's periods, as instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// The exchange-local trading date.
    pub date: NaiveDate,
    pub pre_start: DateTime<Utc>,
    pub open: DateTime<Utc>,
    pub close: DateTime<Utc>,
    pub post_end: DateTime<Utc>,
}

impl Session {
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.open <= t && t < self.close
    }
}

impl Exchange {
    /// The exchange of a known suffix (`DE`, `TO`, `T`, `L`; any case).
    pub fn by_suffix(suffix: &str) -> Option<&'static Exchange> {
        EXCHANGES
            .into_iter()
            .find(|e| !e.suffix.is_empty() && e.suffix.eq_ignore_ascii_case(suffix))
    }

    /// The IANA zone name (`meta.exchangeTimezoneName`).
    pub fn zone_name(&self) -> &'static str {
        self.zone.name()
    }

    /// The instant of local wall time `hh:mm` on `date`. None only for wall times a DST change
    /// skips, which no session boundary uses.
    pub fn at(&self, date: NaiveDate, (hour, minute): (u32, u32)) -> Option<DateTime<Utc>> {
        let local = date.and_time(NaiveTime::from_hms_opt(hour, minute, 0)?);
        self.zone
            .from_local_datetime(&local)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    }

    /// 00:00 local time on `date`: the key a correct client gives the day's daily bar.
    pub fn midnight(&self, date: NaiveDate) -> Option<DateTime<Utc>> {
        self.at(date, (0, 0))
    }

    pub fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.zone).date_naive()
    }

    /// Yahoo's `gmtoffset`: seconds east of UTC at `t`.
    pub fn gmtoffset(&self, t: DateTime<Utc>) -> i32 {
        t.with_timezone(&self.zone).offset().fix().local_minus_utc()
    }

    /// Yahoo's `timezone`: the zone abbreviation at `t` (`EDT`, `CET`, `BST`, `JST`, …).
    pub fn abbreviation(&self, t: DateTime<Utc>) -> String {
        let local = t.with_timezone(&self.zone);
        local
            .offset()
            .abbreviation()
            .map_or_else(|| local.format("%:z").to_string(), str::to_string)
    }

    /// The session of `date`, or None on a weekend.
    pub fn session(&self, date: NaiveDate) -> Option<Session> {
        if is_weekend(date) {
            return None;
        }
        Some(Session {
            date,
            pre_start: self.at(date, self.pre_start)?,
            open: self.at(date, self.open)?,
            close: self.at(date, self.close)?,
            post_end: self.at(date, self.post_end)?,
        })
    }

    /// Hourly bars a session has: open, open+1h, …, the last one possibly shorter.
    pub fn hourly_bars_per_day(&self) -> u32 {
        let minutes = (self.close.0 * 60 + self.close.1) - (self.open.0 * 60 + self.open.1);
        minutes.div_ceil(60)
    }

    /// The latest session that started at or before `t` (today's if it has opened), looking back
    /// at most a week.
    pub fn session_at_or_before(&self, t: DateTime<Utc>) -> Option<Session> {
        let today = self.local_date(t);
        (0..8)
            .filter_map(|back| self.session(today - Duration::days(back)))
            .find(|s| s.open <= t)
    }

    /// The latest session close at or before `t`, looking back at most a week.
    pub fn last_close(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let today = self.local_date(t);
        (0..8)
            .filter_map(|back| self.session(today - Duration::days(back)))
            .map(|s| s.close)
            .find(|close| *close <= t)
    }

    /// The trading day `currentTradingPeriod` describes at `t`: the local date, or the next
    /// weekday when `t` falls on a weekend.
    pub fn trading_day(&self, t: DateTime<Utc>) -> Option<Session> {
        let today = self.local_date(t);
        (0..8).find_map(|ahead| self.session(today + Duration::days(ahead)))
    }

    /// Yahoo's `regularMarketTime`: `t` during a session, otherwise the last close before `t`.
    pub fn regular_market_time(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        match self.session_at_or_before(t) {
            Some(s) if s.contains(t) => t,
            Some(s) => s.close,
            None => t,
        }
    }
}

pub fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// The exchange a security trades on, from any spelling of its symbol: a dotted or dashed known
/// suffix (`SAP.DE`, `SAP-DE`) names that exchange, anything else is a US listing (`BRK.B`).
/// For the generator and the ground truth, which key securities, not Yahoo spellings.
pub fn exchange_of(symbol: &str) -> &'static Exchange {
    let upper = symbol.trim().to_ascii_uppercase();
    upper
        .rsplit_once(['.', '-'])
        .and_then(|(base, suffix)| (!base.is_empty()).then_some(suffix))
        .and_then(Exchange::by_suffix)
        .unwrap_or(&US)
}

/// The exchange Yahoo serves `symbol` from, or None when Yahoo does not know that spelling.
///
/// Yahoo spells share classes with a dash and keeps the dot of exchange suffixes (`BRK-B`,
/// `GS2C.DE`, `RCI-B.TO`): a dot is only accepted before a known exchange suffix, so `BRK.B`
/// is unknown; and an exchange suffix spelt with a dash (`GS2C-DE`) is unknown too.
pub fn yahoo_listing(symbol: &str) -> Option<&'static Exchange> {
    let upper = symbol.trim().to_ascii_uppercase();
    if upper.is_empty() {
        return None;
    }
    if let Some((base, suffix)) = upper.rsplit_once('.') {
        return match Exchange::by_suffix(suffix) {
            Some(exchange) if !base.is_empty() && !base.contains('.') => Some(exchange),
            _ => None,
        };
    }
    match upper.rsplit_once('-') {
        Some((_, suffix)) if Exchange::by_suffix(suffix).is_some() => None,
        _ => Some(&US),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn hm(t: DateTime<Utc>) -> String {
        t.format("%Y-%m-%dT%H:%MZ").to_string()
    }

    #[test]
    fn yahoo_knows_dotted_exchange_suffixes_and_dashed_class_shares_only() {
        for (symbol, suffix) in [
            ("GS2C.DE", "DE"),
            ("WSU.DE", "DE"),
            ("SAP.DE", "DE"),
            ("0P000071W8.TO", "TO"),
            ("SHOP.TO", "TO"),
            ("RCI-B.TO", "TO"),
            ("7203.T", "T"),
            ("TSCO.L", "L"),
            ("tsco.l", "L"),
            ("AAPL", ""),
            ("BRK-B", ""),
            ("BTC-USD", ""),
            ("^GSPC", ""),
        ] {
            assert_eq!(
                yahoo_listing(symbol).map(|e| e.suffix),
                Some(suffix),
                "{symbol}"
            );
        }
        for symbol in [
            "BRK.B", "BF.B", "GS2C-DE", "SAP-DE", "7203-T", ".DE", "A.B.DE", "",
        ] {
            assert_eq!(yahoo_listing(symbol), None, "{symbol}");
        }
    }

    #[test]
    fn any_spelling_of_a_security_finds_its_exchange() {
        assert_eq!(exchange_of("GS2C-DE").suffix, "DE");
        assert_eq!(exchange_of("gs2c.de").suffix, "DE");
        assert_eq!(exchange_of("BRK.B").suffix, "");
        assert_eq!(exchange_of("BRK-B").suffix, "");
        assert_eq!(exchange_of("DE").suffix, "");
    }

    #[test]
    fn sessions_follow_each_zone_across_its_own_dst_change() {
        // US clocks change on 8 March 2026, European ones on 29 March: in between, New York is
        // one hour closer to Europe than usual.
        let cases = [
            (&US, "2026-03-06", "2026-03-06T14:30Z", "2026-03-06T21:00Z"),
            (&US, "2026-03-09", "2026-03-09T13:30Z", "2026-03-09T20:00Z"),
            (
                &TORONTO,
                "2026-03-09",
                "2026-03-09T13:30Z",
                "2026-03-09T20:00Z",
            ),
            (
                &XETRA,
                "2026-03-27",
                "2026-03-27T08:00Z",
                "2026-03-27T16:30Z",
            ),
            (
                &XETRA,
                "2026-03-30",
                "2026-03-30T07:00Z",
                "2026-03-30T15:30Z",
            ),
            (
                &LONDON,
                "2026-03-27",
                "2026-03-27T08:00Z",
                "2026-03-27T16:30Z",
            ),
            (
                &LONDON,
                "2026-03-30",
                "2026-03-30T07:00Z",
                "2026-03-30T15:30Z",
            ),
            (
                &TOKYO,
                "2026-03-30",
                "2026-03-30T00:00Z",
                "2026-03-30T06:30Z",
            ),
        ];
        for (exchange, date, open, close) in cases {
            let s = exchange.session(day(date)).unwrap();
            assert_eq!(
                (hm(s.open), hm(s.close)),
                (open.into(), close.into()),
                "{date}"
            );
        }
        assert_eq!(XETRA.session(day("2026-03-28")), None);
        assert_eq!(
            [&US, &XETRA, &TORONTO, &TOKYO, &LONDON].map(Exchange::hourly_bars_per_day),
            [7, 9, 7, 7, 9]
        );
    }

    #[test]
    fn zone_abbreviations_and_offsets_are_yahoos() {
        let winter = Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap();
        let summer = Utc.with_ymd_and_hms(2026, 7, 15, 12, 0, 0).unwrap();
        let got: Vec<(String, i32, String, i32)> = EXCHANGES
            .iter()
            .map(|e| {
                (
                    e.abbreviation(winter),
                    e.gmtoffset(winter),
                    e.abbreviation(summer),
                    e.gmtoffset(summer),
                )
            })
            .collect();
        let want = [
            ("EST", -18_000, "EDT", -14_400),
            ("CET", 3_600, "CEST", 7_200),
            ("EST", -18_000, "EDT", -14_400),
            ("JST", 32_400, "JST", 32_400),
            ("GMT", 0, "BST", 3_600),
        ];
        let want: Vec<(String, i32, String, i32)> = want
            .iter()
            .map(|(a, b, c, d)| (a.to_string(), *b, c.to_string(), *d))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn regular_market_time_is_the_clock_in_a_session_and_the_last_close_outside() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let during = at("2026-03-10T16:48:24Z");
        assert_eq!(US.regular_market_time(during), during);
        assert_eq!(
            US.regular_market_time(at("2026-03-10T23:00:00Z")),
            at("2026-03-10T20:00:00Z")
        );
        // Before Tuesday's open: Monday's close. On Sunday: Friday's close.
        assert_eq!(
            US.regular_market_time(at("2026-03-10T12:00:00Z")),
            at("2026-03-09T20:00:00Z")
        );
        assert_eq!(
            US.regular_market_time(at("2026-03-08T12:00:00Z")),
            at("2026-03-06T21:00:00Z")
        );
        // A weekend's trading period is Monday's.
        assert_eq!(
            US.trading_day(at("2026-03-08T12:00:00Z")).unwrap().date,
            day("2026-03-09")
        );
        assert_eq!(
            TOKYO.trading_day(at("2026-03-10T23:30:00Z")).unwrap().date,
            day("2026-03-11")
        );
    }
}
