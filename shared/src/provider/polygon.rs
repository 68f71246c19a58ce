//! Polygon aggregates v2 adapter (placeholder until implemented).
use std::sync::Arc;

use async_trait::async_trait;
use url::Url;

use crate::config::Secret;

use super::pacing::Pacer;
use super::{FetchedBars, PriceProvider, ProviderError};
use crate::error::BackfillError;
use crate::model::{DateRange, Interval, ProviderKind, Symbol};

pub struct PolygonProvider {
    #[allow(dead_code)]
    http: reqwest::Client,
    #[allow(dead_code)]
    base_url: Url,
    #[allow(dead_code)]
    api_key: Secret,
    #[allow(dead_code)]
    pacer: Arc<Pacer>,
}

impl PolygonProvider {
    pub fn new(http: reqwest::Client, base_url: Url, api_key: Secret, pacer: Arc<Pacer>) -> Self {
        Self {
            http,
            base_url,
            api_key,
            pacer,
        }
    }
}

#[async_trait]
impl PriceProvider for PolygonProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Polygon
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
            "polygon adapter not implemented yet".into(),
        ))
    }
}
