-- Sliding 3-hour windows every hour, per currency, outflows only.
INSERT INTO outflow_3h
SELECT
    hop(interval '1 hour', interval '3 hours') AS window,
    currency,
    SUM(-amount_minor) AS spent_minor,
    COUNT(*) AS n,
    MAX(-amount_minor) AS largest_minor
FROM transactions
WHERE amount_minor < 0
GROUP BY window, currency;
