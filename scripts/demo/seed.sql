-- Demo data: a handful of tickers and article mentions, spread over the last two weeks, so that
-- the original's test mode (top 5 most-mentioned over the last 7 days) has something to choose.
-- Applied by `make demo` only when the demo database has no tickers yet.
INSERT INTO ticker (symbol, name, exchange) VALUES
    ('AAPL', 'Apple Inc.', 'NASDAQ'),
    ('MSFT', 'Microsoft Corporation', 'NASDAQ'),
    ('NVDA', 'NVIDIA Corporation', 'NASDAQ'),
    ('TSLA', 'Tesla, Inc.', 'NASDAQ'),
    ('AMZN', 'Amazon.com, Inc.', 'NASDAQ'),
    ('GOOGL', 'Alphabet Inc.', 'NASDAQ'),
    ('META', 'Meta Platforms, Inc.', 'NASDAQ'),
    ('BRK.B', 'Berkshire Hathaway Inc. Class B', 'NYSE'),
    ('JPM', 'JPMorgan Chase & Co.', 'NYSE'),
    ('XOM', 'Exxon Mobil Corporation', 'NYSE');

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
    INSERT INTO article (title, url, published_at, created_at)
    SELECT 'Demo headline ' || n || ' about ' || symbol, 'https://example.com/news/' || n, at, at
      FROM numbered
    RETURNING id, title, created_at
)
INSERT INTO article_ticker (article_id, ticker, created_at)
SELECT id, split_part(title, ' about ', 2), created_at FROM articles;
