//! The HTTP exchange both adapters share: one GET paced by the shared request budget, its
//! status, `Retry-After` and body, with transport failures named `Unavailable` and the URL (which
//! may carry an API key) left out.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, ACCEPT, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};

use super::budget::RateGate;
use super::ProviderError;
use crate::model::Symbol;

/// What a provider answered, before the adapter interprets it.
pub(super) struct Answer {
    pub status: StatusCode,
    pub retry_after: Option<Duration>,
    pub body: String,
}

/// Sends `request` (asking for JSON) in its slot of `gate`'s budget and reads the whole body.
/// A 429 pauses the whole budget, so that everyone sharing it holds off, not only this request.
pub(super) async fn send(
    gate: &RateGate,
    request: RequestBuilder,
    provider: &str,
    symbol: &Symbol,
) -> Result<Answer, ProviderError> {
    gate.acquire().await?;
    let answer = exchange(request, provider, symbol).await?;
    if answer.status == StatusCode::TOO_MANY_REQUESTS {
        gate.limited(answer.retry_after).await;
    }
    Ok(answer)
}

async fn exchange(
    request: RequestBuilder,
    provider: &str,
    symbol: &Symbol,
) -> Result<Answer, ProviderError> {
    let response = request
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| transport_error(provider, symbol, e))?;
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let body = response
        .text()
        .await
        .map_err(|e| transport_error(provider, symbol, e))?;
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

/// `Retry-After` as delay-seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(raw).ok()?.with_timezone(&Utc);
    Some((at - Utc::now()).to_std().unwrap_or(Duration::ZERO))
}

/// A transport failure (connect, timeout, cut body) as `Unavailable`. The URL is stripped: for
/// Polygon it carries the API key.
fn transport_error(provider: &str, symbol: &Symbol, e: reqwest::Error) -> ProviderError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "lost the response body"
    } else {
        "failed"
    };
    let e = e.without_url();
    // The innermost cause says the most ("Connection refused (os error 111)").
    let mut cause: &dyn std::error::Error = &e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    ProviderError::Unavailable(format!("{provider} request for {symbol} {what}: {cause}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "12".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(12)));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }
}
