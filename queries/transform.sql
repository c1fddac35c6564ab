-- Per-record transform: validated input (`incoming`) to the `transactions` table.
-- Runs with DataFusion on every micro-batch; UDFs registered by the udfs crate
-- are available here. Keep the engine columns (source, transaction_id,
-- account_id, amount_minor, currency, event_time, content_hash, ingest_seq).
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
    category,
    event_time,
    posted_at,
    ingested_at,
    ingest_seq,
    content_hash
FROM incoming;
