//! Which tickers a run covers. Reads the original job's `ticker`, `article_ticker` and `article`
//! tables only, and only columns those tables have in the original schema.

use tokio_postgres::GenericClient;

use crate::error::BackfillError;
use crate::model::{Selection, Symbol};

// Mentions are `article_ticker` rows, whose key is (article_id, ticker) in the original; the
// DISTINCT keeps a database without that key (duplicate pairs) from counting an article twice.
// Recency is the article's `published_at`: `article_ticker` has no time of its own in the
// original schema. Both statements name only columns the original tables have.

/// Tickers with at least `$1` mentions, joined to `ticker`, by symbol: the original job's query.
/// `$2` (days, or NULL for all time) limits the mentions counted to articles published since.
pub const MIN_ARTICLES_SQL: &str = "
    SELECT t.symbol
      FROM ticker t
      JOIN article_ticker at ON at.ticker = t.symbol
      JOIN article a ON a.id = at.article_id
     WHERE $2::int IS NULL OR a.published_at >= now() - make_interval(days => $2::int)
  GROUP BY t.symbol
    HAVING COUNT(DISTINCT at.article_id) >= $1
  ORDER BY t.symbol";

/// The `$1` most-mentioned tickers with at least `$2` mentions (in articles published within `$3`
/// days, or all time when NULL), ties broken by symbol.
pub const TOP_N_SQL: &str = "
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
    let rows = match selection {
        Selection::Explicit { symbols } => {
            let mut out = symbols.clone();
            out.sort();
            out.dedup();
            return Ok(out);
        }
        Selection::MinArticles {
            min_articles,
            within_days,
        } => {
            let days = within_days.map(|d| i32::try_from(d).unwrap_or(i32::MAX));
            client
                .query(MIN_ARTICLES_SQL, &[min_articles, &days])
                .await?
        }
        Selection::TopN {
            n,
            min_articles,
            within_days,
        } => {
            let days = within_days.map(|d| i32::try_from(d).unwrap_or(i32::MAX));
            client.query(TOP_N_SQL, &[n, min_articles, &days]).await?
        }
    };
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
