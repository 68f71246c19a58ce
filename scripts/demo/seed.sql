-- Demo data: a handful of tickers and article mentions, spread over the last two weeks, so that
-- the original's test mode (top 5 most-mentioned over the last 7 days) has something to choose.
-- Applied by `make demo` only when the demo database has no tickers yet.
-- Rows as the original application writes them: `ticker`'s NOT NULL aliases/sources/is_sp500,
-- `article`'s NOT NULL source/url/published_at/title/created_at, `article_ticker`'s confidence.
INSERT INTO ticker (symbol, name, aliases, exchange, sources, is_sp500) VALUES
    ('AAPL', 'Apple Inc.', '["Apple"]', 'NASDAQ', '["sp500"]', true),
    ('MSFT', 'Microsoft Corporation', '["Microsoft"]', 'NASDAQ', '["sp500"]', true),
    ('NVDA', 'NVIDIA Corporation', '["Nvidia"]', 'NASDAQ', '["sp500"]', true),
    ('TSLA', 'Tesla, Inc.', '["Tesla"]', 'NASDAQ', '["sp500"]', true),
    ('AMZN', 'Amazon.com, Inc.', '["Amazon"]', 'NASDAQ', '["sp500"]', true),
    ('GOOGL', 'Alphabet Inc.', '["Alphabet", "Google"]', 'NASDAQ', '["sp500"]', true),
    ('META', 'Meta Platforms, Inc.', '["Meta", "Facebook"]', 'NASDAQ', '["sp500"]', true),
    ('BRK.B', 'Berkshire Hathaway Inc. Class B', '["Berkshire"]', 'NYSE', '["sp500"]', true),
    ('JPM', 'JPMorgan Chase & Co.', '["JPMorgan"]', 'NYSE', '["sp500"]', true),
    ('XOM', 'Exxon Mobil Corporation', '["Exxon"]', 'NYSE', '["sp500"]', true);

-- (symbol, mentions in the last 7 days, older mentions)
WITH plan (symbol, recent, older) AS (
    VALUES ('NVDA', 14, 3), ('AAPL', 12, 20), ('TSLA', 11, 2), ('MSFT', 9, 25), ('BRK.B', 8, 0),
           ('AMZN', 6, 30), ('GOOGL', 4, 12), ('META', 3, 2), ('JPM', 2, 1), ('XOM', 1, 9)
), mentions AS (
    SELECT symbol, now() - make_interval(hours => (g * 7) % 160) AS at
      FROM plan, generate_series(1, recent) AS g
    UNION ALL
    SELECT symbol, now() - make_interval(days => 8 + g % 6) AS at
      FROM plan, generate_series(1, older) AS g
), numbered AS (
    SELECT symbol, at, ROW_NUMBER() OVER (ORDER BY at, symbol) AS n FROM mentions
), articles AS (
    INSERT INTO article (source, title, url, published_at, created_at)
    SELECT 'demo', 'Demo headline ' || n || ' about ' || symbol, 'https://example.com/news/' || n, at, at
      FROM numbered
    RETURNING id, title
)
INSERT INTO article_ticker (article_id, ticker, confidence, matched_terms)
SELECT id, split_part(title, ' about ', 2), 0.9, json_build_array(split_part(title, ' about ', 2))
  FROM articles;
