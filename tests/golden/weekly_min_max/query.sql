-- Weekly per account: smallest and largest signed amount and the count.
INSERT INTO weekly_range
SELECT
    tumble(interval '7 days') AS w,
    account_id,
    MIN(amount_minor) AS min_minor,
    MAX(amount_minor) AS max_minor,
    COUNT(transaction_id) AS n
FROM transactions
GROUP BY w, account_id;
