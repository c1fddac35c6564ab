-- Per-record transform: validated input (`incoming`) to the `transactions` table.
-- Runs with DataFusion on every micro-batch; UDFs registered by the udfs crate
-- are available here. Keep the engine columns (source, transaction_id,
-- account_id, amount_minor, currency, event_time, content_hash, ingest_seq).
--
-- categorize() keeps a category present in the input and lets the current
-- CatBoost model fill the rest (identical calls are evaluated once).
INSERT INTO transactions
SELECT
    source,
    transaction_id,
    account_id,
    amount_minor,
    currency,
    direction,
    description,
    counterparty,
    categorize(description, amount_minor, currency, direction, account_id, category)['category'] AS category,
    categorize(description, amount_minor, currency, direction, account_id, category)['confidence'] AS category_confidence,
    categorize(description, amount_minor, currency, direction, account_id, category)['model_version'] AS model_version,
    categorize(description, amount_minor, currency, direction, account_id, category)['source'] AS category_source,
    categorize(description, amount_minor, currency, direction, account_id, category)['needs_review'] AS needs_review,
    event_time,
    posted_at,
    ingested_at,
    ingest_seq,
    content_hash
FROM incoming;
