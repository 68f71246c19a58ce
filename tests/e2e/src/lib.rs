//! Helpers for the end-to-end tests in `tests/`: each test starts its own [`LocalStack`] (moto's
//! interpreter, the real function binaries under `cargo lambda watch`, a fresh database, its own
//! market-sim), runs the state machine and checks the database against market-sim's ground truth.
//!
//! The tests of one binary run one at a time ([`serial`]): each stack runs several processes,
//! and two at once would only compete for the same two cores.

use std::time::Duration;

use chrono::{Datelike, Days, NaiveDate, Utc};
use local_stack::{LocalStack, LocalStackOptions};
use market_sim::{GroundTruth, GroundTruthBar};
use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::{Client, NoTls};

pub use local_stack;

/// How long one execution of these small runs may take before the test gives up.
pub const EXECUTION_TIMEOUT: Duration = Duration::from_secs(120);

static SERIAL: Mutex<()> = Mutex::const_new(());

/// Held for the duration of a test so that the tests of a binary run one after another.
pub async fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// Starts a stack or fails the test with the reason (which component, and its log's tail).
pub async fn start_stack(options: LocalStackOptions) -> LocalStack {
    match LocalStack::start(options).await {
        Ok(stack) => stack,
        Err(e) => panic!("the local stack did not start: {e}"),
    }
}

/// A connection to the stack's database.
pub async fn db(stack: &LocalStack) -> Client {
    let (client, connection) = tokio_postgres::connect(stack.database_url(), NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the stack's database: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// `SELECT count(*) FROM <table>`.
pub async fn count_rows(client: &Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap_or_else(|e| panic!("counting {table}: {e}"))
        .get(0)
}

/// Monday to Wednesday of a week that ended at least a week ago: three weekdays with hourly bars,
/// well inside Yahoo's 730 days of hourly history, whatever the date the tests run on.
pub fn recent_weekdays() -> (NaiveDate, NaiveDate) {
    let a_week_ago = Utc::now().date_naive() - Days::new(7);
    let monday = a_week_ago - Days::new(u64::from(a_week_ago.weekday().num_days_from_monday()));
    (monday, monday + Days::new(2))
}

/// market-sim's ground truth for one symbol (hourly Yahoo bars over inclusive UTC days).
pub async fn ground_truth(
    stack: &LocalStack,
    symbol: &str,
    start: NaiveDate,
    end: NaiveDate,
) -> Vec<GroundTruthBar> {
    let url = format!(
        "{}/__admin/ground-truth?provider=yahoo&symbol={symbol}&interval=1h&start={start}&end={end}",
        stack.market_sim_url()
    );
    let truth: GroundTruth = reqwest::get(&url)
        .await
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not ground truth: {e}"));
    truth.bars
}

/// One price row as stored, in the ground truth's terms; prices at the column's 4 decimals.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bar {
    pub ts: chrono::DateTime<Utc>,
    pub open: Option<i64>,
    pub high: Option<i64>,
    pub low: Option<i64>,
    pub close: i64,
    pub volume: Option<i64>,
}

/// A price as ten-thousandths (`NUMERIC(14, 4)`), so that equal prices compare equal.
fn ten_thousandths(price: f64) -> i64 {
    (price * 10_000.0).round() as i64
}

impl From<&GroundTruthBar> for Bar {
    fn from(b: &GroundTruthBar) -> Bar {
        Bar {
            ts: b.ts,
            open: Some(ten_thousandths(b.open)),
            high: Some(ten_thousandths(b.high)),
            low: Some(ten_thousandths(b.low)),
            close: ten_thousandths(b.close),
            volume: Some(b.volume),
        }
    }
}

/// Every stored bar of `symbol`, by time.
pub async fn stored_bars(client: &Client, symbol: &str) -> Vec<Bar> {
    let rows = client
        .query(
            "SELECT date, open_price::float8, high_price::float8, low_price::float8,
                    close_price::float8, volume
               FROM stock_price_history WHERE symbol = $1 ORDER BY date",
            &[&symbol],
        )
        .await
        .unwrap_or_else(|e| panic!("reading the bars of {symbol}: {e}"));
    rows.iter()
        .map(|r| Bar {
            ts: r.get(0),
            open: r.get::<_, Option<f64>>(1).map(ten_thousandths),
            high: r.get::<_, Option<f64>>(2).map(ten_thousandths),
            low: r.get::<_, Option<f64>>(3).map(ten_thousandths),
            close: ten_thousandths(r.get(4)),
            volume: r.get(5),
        })
        .collect()
}
