//! What a command reads and writes besides Step Functions: where the database is, and where its
//! results go. The binary takes both from the process (`DATABASE_URL` or `DATABASE_SECRET_ARN`,
//! stdout); a test gives its own database and a buffer, so that a command runs in-process.
//! Progress, hints and warnings still go to stderr.

use std::io::Write;

use shared::db::DatabaseSource;
use tokio_postgres::Client;

use crate::error::CliError;
use crate::store;

pub struct Session<'o> {
    database: Option<DatabaseSource>,
    out: &'o mut (dyn Write + Send),
}

impl<'o> Session<'o> {
    /// `database: None` is a CLI without a database setting (commands that need one refuse).
    pub fn new(database: Option<DatabaseSource>, out: &'o mut (dyn Write + Send)) -> Self {
        Self { database, out }
    }

    /// The database the environment names, writing to `out`.
    pub fn from_env(out: &'o mut (dyn Write + Send)) -> Self {
        Self::new(DatabaseSource::from_env(), out)
    }

    pub(crate) fn database(&self) -> Option<&DatabaseSource> {
        self.database.as_ref()
    }

    /// A connection to the database; `Configuration` (exit 2) when none is set.
    pub(crate) async fn connect(&self) -> Result<Client, CliError> {
        let source = self
            .database
            .as_ref()
            .ok_or_else(CliError::database_not_configured)?;
        store::connect(source).await
    }

    /// Where results go.
    pub(crate) fn out(&mut self) -> &mut (dyn Write + Send) {
        &mut *self.out
    }
}
