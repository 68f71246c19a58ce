//! `ticker`, as far as prices depend on it. In the original's database
//! `stock_price_history.symbol` references `ticker(symbol)`, so a listed symbol that `ticker`
//! lacks can never be stored: it is settled before any provider call, either as a `failed`
//! ticker (`NotInTickerTable`) or, when the request asks for it, by registering it.

use tokio_postgres::GenericClient;

use crate::error::BackfillError;
use crate::model::Symbol;

/// The `error_name` of a ticker settled because `ticker` lacks it.
pub const NOT_IN_TICKER_TABLE: &str = "NotInTickerTable";

/// The foreign key from `stock_price_history` to `ticker`, by name, if the database has one.
/// A database this system created for itself has none.
pub async fn price_foreign_key(
    client: &impl GenericClient,
) -> Result<Option<String>, BackfillError> {
    let row = client
        .query_opt(
            "SELECT conname::text
               FROM pg_constraint
              WHERE contype = 'f'
                AND conrelid = to_regclass('stock_price_history')
                AND confrelid = to_regclass('ticker')
           ORDER BY conname
              LIMIT 1",
            &[],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// The symbols of `symbols` that `ticker` does not hold, in the order given.
pub async fn missing(
    client: &impl GenericClient,
    symbols: &[Symbol],
) -> Result<Vec<Symbol>, BackfillError> {
    let names: Vec<&str> = symbols.iter().map(Symbol::as_str).collect();
    let rows = client
        .query(
            "SELECT s.symbol
               FROM UNNEST($1::text[]) WITH ORDINALITY AS s(symbol, ord)
              WHERE NOT EXISTS (SELECT 1 FROM ticker t WHERE t.symbol = s.symbol)
           ORDER BY s.ord",
            &[&names],
        )
        .await?;
    let absent: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    Ok(symbols
        .iter()
        .filter(|s| absent.iter().any(|a| a == s.as_str()))
        .cloned()
        .collect())
}

/// Why a ticker cannot be stored, for `backfill_progress.error_message`.
pub fn not_in_ticker_table_message(symbol: &Symbol, foreign_key: &str) -> String {
    format!(
        "{symbol} is not in table ticker, and stock_price_history.symbol references ticker(symbol) \
         (foreign key {foreign_key}): add {symbol} to ticker, or resume the run with \
         register_tickers (backfill resume RUN_ID --register-tickers)"
    )
}

/// One column of `ticker` as the catalog describes it.
struct TickerColumn {
    name: String,
    data_type: String,
    required: bool,
}

/// The value a registered ticker gets in a column, as SQL over `s.symbol`; `None` for a column
/// left to its default or NULL.
fn registered_value(column: &TickerColumn) -> Option<&'static str> {
    match (column.name.as_str(), column.data_type.as_str()) {
        ("symbol", _) => Some("s.symbol"),
        // The original requires a name; the symbol is the only one known.
        ("name", _) => Some("s.symbol"),
        (_, "jsonb") if column.required => Some("'[]'::jsonb"),
        (_, "json") if column.required => Some("'[]'::json"),
        (_, "ARRAY") if column.required => Some("'{}'"),
        (_, "boolean") if column.required => Some("false"),
        _ => None,
    }
}

/// Adds `symbols` to `ticker` with what its NOT NULL columns need: in the original schema
/// name = symbol, `aliases` and `sources` empty JSON arrays, `is_sp500` false. Built from the
/// catalog so that it also fits an older or wider `ticker`; a required column this cannot fill
/// is refused by name before anything is written. Returns the rows added.
pub async fn register(
    client: &impl GenericClient,
    symbols: &[Symbol],
) -> Result<u64, BackfillError> {
    if symbols.is_empty() {
        return Ok(0);
    }
    let rows = client
        .query(
            "SELECT column_name::text, data_type::text,
                    is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO'
               FROM information_schema.columns
              WHERE table_schema = current_schema() AND table_name = 'ticker'
           ORDER BY ordinal_position",
            &[],
        )
        .await?;
    let columns: Vec<TickerColumn> = rows
        .iter()
        .map(|r| TickerColumn {
            name: r.get(0),
            data_type: r.get(1),
            required: r.get(2),
        })
        .collect();
    let mut names = Vec::new();
    let mut values = Vec::new();
    for column in &columns {
        match registered_value(column) {
            Some(value) => {
                names.push(format!("\"{}\"", column.name.replace('"', "\"\"")));
                values.push(value);
            }
            None if column.required => {
                return Err(BackfillError::InvalidInput(format!(
                    "cannot register tickers: ticker.{} ({}) is NOT NULL without a default, and \
                     this system does not know what to put there; add the tickers to ticker yourself",
                    column.name, column.data_type
                )))
            }
            None => {}
        }
    }
    let sql = format!(
        "INSERT INTO ticker ({}) SELECT {} FROM UNNEST($1::text[]) AS s(symbol)
         ON CONFLICT DO NOTHING",
        names.join(", "),
        values.join(", ")
    );
    let symbols: Vec<&str> = symbols.iter().map(Symbol::as_str).collect();
    Ok(client.execute(&sql, &[&symbols]).await?)
}

/// How a list of symbols stands against `ticker`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settled {
    /// Symbols that can be fetched and stored.
    pub fetchable: Vec<Symbol>,
    /// Symbols `ticker` lacks, with the message that says why they are not fetched.
    pub unlisted: Vec<(Symbol, String)>,
    /// Symbols this call added to `ticker`.
    pub registered: u64,
}

/// Splits `symbols` into those that can be stored and those `ticker` lacks, registering the
/// latter when `register` is set. Without a foreign key every symbol can be stored.
pub async fn settle(
    client: &impl GenericClient,
    symbols: &[Symbol],
    register_missing: bool,
) -> Result<Settled, BackfillError> {
    let Some(foreign_key) = price_foreign_key(client).await? else {
        return Ok(Settled {
            fetchable: symbols.to_vec(),
            ..Settled::default()
        });
    };
    let absent = missing(client, symbols).await?;
    if absent.is_empty() {
        return Ok(Settled {
            fetchable: symbols.to_vec(),
            ..Settled::default()
        });
    }
    if register_missing {
        let registered = register(client, &absent).await?;
        return Ok(Settled {
            fetchable: symbols.to_vec(),
            unlisted: Vec::new(),
            registered,
        });
    }
    let fetchable = symbols
        .iter()
        .filter(|s| !absent.contains(s))
        .cloned()
        .collect();
    let unlisted = absent
        .into_iter()
        .map(|s| {
            let message = not_in_ticker_table_message(&s, &foreign_key);
            (s, message)
        })
        .collect();
    Ok(Settled {
        fetchable,
        unlisted,
        registered: 0,
    })
}
