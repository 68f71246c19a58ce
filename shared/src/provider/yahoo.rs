//! Yahoo chart v8 adapter (placeholder until implemented).
use std::sync::Arc;

use async_trait::async_trait;
use url::Url;

use super::pacing::Pacer;
use super::{FetchedBars, PriceProvider, ProviderError};
use crate::error::BackfillError;
use crate::model::{DateRange, Interval, ProviderKind, Symbol};

pub struct YahooProvider {
    #[allow(dead_code)]
    http: reqwest::Client,
    #[allow(dead_code)]
    base_url: Url,
    #[allow(dead_code)]
    pacer: Arc<Pacer>,
}

impl YahooProvider {
    pub fn new(http: reqwest::Client, base_url: Url, pacer: Arc<Pacer>) -> Self {
        Self {
            http,
            base_url,
            pacer,
        }
    }
}

#[async_trait]
impl PriceProvider for YahooProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Yahoo
    }
    fn check_range(&self, _range: &DateRange, _interval: Interval) -> Result<(), BackfillError> {
        Ok(())
    }
    async fn fetch_bars(
        &self,
        _s: &Symbol,
        _r: &DateRange,
        _i: Interval,
    ) -> Result<FetchedBars, ProviderError> {
        Err(ProviderError::Unavailable(
            "yahoo adapter not implemented yet".into(),
        ))
    }
}
