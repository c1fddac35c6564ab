-- Daily cash in/out per account, currency and category (event-time windows).
-- Arroyo dialect: tumble() in GROUP BY over event time. The embedded engine
-- writes window_start/window_end for the window column.
INSERT INTO cashflow_daily
SELECT
    tumble(interval '1 day') AS window,
    account_id,
    currency,
    category,
    SUM(CASE WHEN amount_minor > 0 THEN amount_minor ELSE 0 END) AS inflow_minor,
    SUM(CASE WHEN amount_minor < 0 THEN -amount_minor ELSE 0 END) AS outflow_minor,
    SUM(amount_minor) AS net_minor,
    COUNT(*) AS tx_count
FROM transactions
GROUP BY window, account_id, currency, category;
