//! `finalize-run`: closes the run ([`crate::run_close::close`]) and summarises it in the original
//! job's result shape.

use lambda_runtime::LambdaEvent;
use tracing::Instrument;

use super::App;
use crate::contract::{parse_event, FinalizeRunInput, FinalizeRunOutput};
use crate::error::BackfillError;
use crate::run_close::close;

impl App {
    pub async fn finalize_run(
        &self,
        event: LambdaEvent<serde_json::Value>,
    ) -> Result<FinalizeRunOutput, BackfillError> {
        let input: FinalizeRunInput = parse_event(event.payload)?;
        let span = tracing::info_span!("finalize_run", run_id = %input.run_id);
        self.finalize(input).instrument(span).await
    }

    pub async fn finalize(
        &self,
        input: FinalizeRunInput,
    ) -> Result<FinalizeRunOutput, BackfillError> {
        let mut client = self.db().await?;
        let tx = client.transaction().await?;
        let summary = close(
            &tx,
            &input.run_id,
            input.lease_execution.as_deref(),
            input.batch_results.as_ref(),
        )
        .await?;
        tx.commit().await?;
        Ok(summary)
    }
}
