//! Which tickers a run covers. Reads the original job's `ticker`, `article_ticker` and `article`
//! tables only, and only columns those tables have in the original schema.

use tokio_postgres::GenericClient;

use crate::error::BackfillError;
use crate::model::{Selection, Symbol};

// Mentions are `article_ticker` rows, whose key is (article_id, ticker) in the original; the
// DISTINCT keeps a database without that key (duplicate pairs) from counting an article twice.
// Recency is the article's `published_at`: `article_ticker` has no time of its own in the
// original schema. Both statements name only columns the original tables have.

/// The tickers with at least `$2` mentions (in articles published within `$3` days, or all time
/// when NULL), joined to `ticker` by symbol: the original job's query. `$1` keeps the most
/// mentioned (ties broken by symbol); NULL keeps them all (PostgreSQL reads `LIMIT NULL` as no
/// limit), which is the threshold selection.
pub const SELECTION_SQL: &str = "
    SELECT t.symbol
      FROM ticker t
      JOIN article_ticker at ON at.ticker = t.symbol
      JOIN article a ON a.id = at.article_id
     WHERE $3::int IS NULL OR a.published_at >= now() - make_interval(days => $3::int)
  GROUP BY t.symbol
    HAVING COUNT(DISTINCT at.article_id) >= $2
  ORDER BY COUNT(DISTINCT at.article_id) DESC, t.symbol
     LIMIT $1";

/// Resolves a selection to a sorted, de-duplicated list of symbols.
pub async fn resolve(
    client: &impl GenericClient,
    selection: &Selection,
) -> Result<Vec<Symbol>, BackfillError> {
    let (limit, min_articles, within_days) = match selection {
        Selection::Explicit { symbols } => {
            let mut out = symbols.clone();
            out.sort();
            out.dedup();
            return Ok(out);
        }
        Selection::MinArticles {
            min_articles,
            within_days,
        } => (None, min_articles, within_days),
        Selection::TopN {
            n,
            min_articles,
            within_days,
        } => (Some(*n), min_articles, within_days),
    };
    let days = within_days.map(|d| i32::try_from(d).unwrap_or(i32::MAX));
    let rows = client
        .query(SELECTION_SQL, &[&limit, min_articles, &days])
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let raw: String = row.get(0);
        match Symbol::parse(&raw) {
            Ok(symbol) => out.push(symbol),
            // A symbol no provider could serve must not stop the run; it is reported and left out.
            Err(e) => {
                tracing::warn!(symbol = %raw, error = %e, "skipping a ticker row with a malformed symbol")
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}
