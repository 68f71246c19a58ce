//! Polygon's grouped daily bars: `GET /v2/aggs/grouped/locale/us/market/stocks/{YYYY-MM-DD}`,
//! one request for one day's bar of every US stock.
//!
//! The wire format, as Polygon documents it (polygon.io/docs/stocks/
//! get_v2_aggs_grouped_locale_us_market_stocks__date, its reference quoted in
//! Seerden/trade documentation/price-action/api/polygon/grouped-daily.md; the official
//! client's `get_grouped_daily_aggs` in polygon-io/client-python PR #128):
//! `{"status":"OK","adjusted":true,"queryCount":…,"resultsCount":…,"request_id":…,
//! "results":[{"T":"AAPL","o":…,"h":…,"l":…,"c":…,"v":…,"vw":…,"n":…,"t":<Unix ms>}]}`, with
//! `adjusted` and `include_otc` as query parameters and the key as `apiKey`. A day without
//! trading (a weekend, a holiday) answers `resultsCount: 0` and no `results`.
//!
//! `t` is documented as the start of the aggregate window, yet the documentation's own example
//! for 2020-10-14 carries `t: 1602705600000`, 2020-10-14 20:00 UTC: 16:00 New York, the close.
//! So `t` is not used as the key: every bar of the answer is the requested day's, keyed at 00:00
//! America/New_York of that day, which is where the per-ticker aggregates stamp a daily bar (and
//! every writer of `stock_price_history` keys it). A result whose `t` lies on another New York
//! day is not that day's bar and is skipped.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::America::New_York;
use url::Url;

use super::super::http::{self, Answer};
use super::{interpret, PolygonProvider};
use crate::model::{Bar, Symbol};
use crate::provider::ProviderError;

/// One grouped daily answer: each listed ticker's bar, keyed at the day's New York midnight.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupedDay {
    pub day: NaiveDate,
    /// Every ticker the answer listed with a complete bar, as Polygon spells it (`BRK.B`).
    pub bars: Vec<(String, Bar)>,
    /// Results with a null element, or with a `t` on another day: not stored.
    pub skipped: u32,
    /// HTTP requests made (always 1: the endpoint has no pages).
    pub requests: u32,
}

/// 00:00 America/New_York of `day`, in UTC: the key of that trading day's daily bar.
pub fn new_york_midnight(day: NaiveDate) -> Option<DateTime<Utc>> {
    New_York
        .from_local_datetime(&day.and_time(NaiveTime::MIN))
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// How messages name a grouped answer (the per-ticker ones are "aggregates").
const GROUPED: &str = "grouped daily bars";

impl PolygonProvider {
    fn grouped_url(&self, day: NaiveDate) -> Result<Url, ProviderError> {
        let mut url = self.base_url.clone();
        let date = day.format("%Y-%m-%d").to_string();
        url.path_segments_mut()
            .map_err(|()| self.bad_base_url())?
            .pop_if_empty()
            .extend([
                "v2", "aggs", "grouped", "locale", "us", "market", "stocks", &date,
            ]);
        url.query_pairs_mut().append_pair("adjusted", "true");
        Ok(url)
    }

    /// The grouped daily bars of `day`: one request, paced like every other request of this
    /// adapter. Errors are those of the per-ticker aggregates (429 `RateLimited`, 5xx and cut
    /// bodies transient, a refused key `Rejected`), with the key redacted.
    pub async fn grouped_daily(&self, day: NaiveDate) -> Result<GroupedDay, ProviderError> {
        self.grouped_daily_inner(day)
            .await
            .map_err(|e| self.redact_error(e))
    }

    async fn grouped_daily_inner(&self, day: NaiveDate) -> Result<GroupedDay, ProviderError> {
        let url = self.grouped_url(day)?;
        // Messages name the day where the per-ticker path names the symbol.
        let label = Symbol::parse(&day.to_string()).map_err(|e| {
            ProviderError::Rejected(format!("cannot name the grouped request for {day}: {e}"))
        })?;
        let key = new_york_midnight(day)
            .ok_or_else(|| ProviderError::Rejected(format!("{day} has no midnight in New York")))?;
        let request = self.http.get(self.with_key(&url));
        let Answer {
            status,
            retry_after,
            body,
        } = http::send(&self.gate, request, "polygon", &label).await?;
        let page = interpret(status, retry_after, &body, GROUPED, &label);
        drop(body);
        let page = page?;
        let mut out = GroupedDay {
            day,
            bars: Vec::new(),
            skipped: 0,
            requests: 1,
        };
        for agg in page.results.unwrap_or_default() {
            let on_day = DateTime::from_timestamp_millis(agg.t)
                .is_some_and(|t| t.with_timezone(&New_York).date_naive() == day);
            match (on_day, agg.bar(key), agg.ticker) {
                (true, Some(bar), Some(ticker)) => out.bars.push((ticker, bar)),
                _ => out.skipped += 1,
            }
        }
        tracing::debug!(
            provider = "polygon",
            day = %day,
            status = status.as_u16(),
            listed = out.bars.len(),
            skipped = out.skipped,
            "polygon grouped daily request"
        );
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_new_york_midnight_in_summer_and_winter() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            new_york_midnight(d("2026-03-06")).unwrap().to_rfc3339(),
            "2026-03-06T05:00:00+00:00"
        );
        assert_eq!(
            new_york_midnight(d("2026-03-09")).unwrap().to_rfc3339(),
            "2026-03-09T04:00:00+00:00"
        );
    }

    #[test]
    fn a_day_without_trading_has_no_results() {
        let label = Symbol::parse("2026-03-07").unwrap();
        let page = interpret(
            reqwest::StatusCode::OK,
            None,
            r#"{"status":"OK","adjusted":true,"queryCount":0,"resultsCount":0,"request_id":"x"}"#,
            GROUPED,
            &label,
        )
        .unwrap();
        assert!(page.results.is_none());
        let e = interpret(
            reqwest::StatusCode::OK,
            None,
            r#"{"status":"OK","res"#,
            GROUPED,
            &label,
        )
        .unwrap_err();
        assert!(e.is_transient(), "{e:?}");
    }
}
