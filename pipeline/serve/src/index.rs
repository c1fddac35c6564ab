//! Transactions in page order, per snapshot, for `GET /api/v1/transactions`.
//!
//! A page is the first `limit` transactions after a cursor in
//! (`event_time`, `source`, `transaction_id`) order that pass the filters.
//! Planning a query that filters and sorts the whole table costs time in
//! proportion to the table on every request; instead the API keeps, for
//! the snapshot it last served, every transaction's place in that order: a
//! list of (batch, row) positions over the decoded files the snapshot's
//! session scans (the same buffers, not a copy). A page is then a binary
//! search for the cursor (and `from`) and a walk forward that tests each row
//! against the filters until the page is full or `to` is passed.
//!
//! Between snapshots the table only grows (each micro-batch appends files;
//! compaction replaces some), so the next snapshot's order is the previous
//! one merged with its new files' rows, sorted on their own; when a file
//! went away the order is rebuilt. The cost of a page no longer grows with
//! the table, only the walk past rows the filters refuse does.
//!
//! Nothing here is state: it is derived from the snapshot. When
//! `transactions` is not held in memory (over `http.read_cache_mb`), or a
//! filtered column is missing or of another type (a custom transform query),
//! [`TxIndex::page`] answers `None` and the page is read with SQL as before;
//! the filters mean exactly what the SQL filters mean (a test compares the
//! two on random filters).

use std::cmp::Ordering;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, StringArray, StringViewArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::compute::{cast, interleave_record_batch};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use finopsia_store::cache::CachedFile;

/// What a transactions page asks for; every field is optional and they are
/// combined with AND, as in the SQL of [`crate::api`].
#[derive(Debug, Clone, Default)]
pub struct TxFilter {
    pub account: Option<String>,
    pub category: Option<String>,
    pub currency: Option<String>,
    pub source: Option<String>,
    /// Event time on or after (µs).
    pub from: Option<i64>,
    /// Event time before (µs).
    pub to: Option<i64>,
    pub min_amount: Option<i64>,
    pub max_amount: Option<i64>,
    pub needs_review: Option<bool>,
    /// Case-insensitive text in description or counterparty.
    pub text: Option<String>,
    /// Rows strictly after this key.
    pub after: Option<(i64, String, String)>,
}

/// A string column, whichever way the table stores it.
#[derive(Debug, Clone)]
enum Strs {
    Utf8(StringArray),
    View(StringViewArray),
}

impl Strs {
    fn of(a: &ArrayRef) -> Option<Strs> {
        match a.data_type() {
            DataType::Utf8 => Some(Strs::Utf8(a.as_string::<i32>().clone())),
            DataType::Utf8View => Some(Strs::View(a.as_string_view().clone())),
            DataType::LargeUtf8 => cast(a, &DataType::Utf8)
                .ok()
                .map(|c| Strs::Utf8(c.as_string::<i32>().clone())),
            _ => None,
        }
    }

    #[inline]
    fn get(&self, i: usize) -> Option<&str> {
        match self {
            Strs::Utf8(a) => a.is_valid(i).then(|| a.value(i)),
            Strs::View(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }
}

/// One batch's columns, typed once (a clone shares the buffers).
#[derive(Debug, Clone)]
struct Cols {
    batch: RecordBatch,
    event_time: TimestampMicrosecondArray,
    source: Strs,
    transaction_id: Strs,
    account_id: Option<Strs>,
    category: Option<Strs>,
    currency: Option<Strs>,
    description: Option<Strs>,
    counterparty: Option<Strs>,
    amount_minor: Option<Int64Array>,
    needs_review: Option<BooleanArray>,
}

impl Cols {
    /// `None` when the batch lacks the sort columns in the types the API
    /// writes (then the whole index is not built).
    fn of(batch: &RecordBatch) -> Option<Cols> {
        let strs = |name: &str| batch.column_by_name(name).and_then(Strs::of);
        let event_time = batch.column_by_name("event_time")?;
        if !matches!(
            event_time.data_type(),
            DataType::Timestamp(TimeUnit::Microsecond, _)
        ) {
            return None;
        }
        Some(Cols {
            event_time: event_time.as_primitive().clone(),
            source: strs("source")?,
            transaction_id: strs("transaction_id")?,
            account_id: strs("account_id"),
            category: strs("category"),
            currency: strs("currency"),
            description: strs("description"),
            counterparty: strs("counterparty"),
            amount_minor: batch
                .column_by_name("amount_minor")
                .filter(|c| c.data_type() == &DataType::Int64)
                .map(|c| c.as_primitive().clone()),
            needs_review: batch
                .column_by_name("needs_review")
                .filter(|c| c.data_type() == &DataType::Boolean)
                .map(|c| c.as_boolean().clone()),
            batch: batch.clone(),
        })
    }

    #[inline]
    fn time(&self, i: usize) -> Option<i64> {
        self.event_time
            .is_valid(i)
            .then(|| self.event_time.value(i))
    }
}

/// A row: its batch and its row in that batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    batch: u32,
    row: u32,
}

/// SQL's `ORDER BY event_time, source, transaction_id` (ascending, nulls
/// last).
fn cmp_nulls_last<T: Ord>(a: Option<T>, b: Option<T>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(&b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// The transactions of one set of files in page order.
#[derive(Debug)]
pub struct TxIndex {
    /// The Delta version of `transactions` it was built for.
    version: Option<u64>,
    files: Vec<PathBuf>,
    cols: Vec<Cols>,
    order: Vec<Pos>,
}

/// A filter compiled for one request.
struct Compiled<'f> {
    f: &'f TxFilter,
    /// ILIKE '%text%' as DataFusion evaluates it (a case-insensitive
    /// regular expression of the literal text).
    text: Option<regex::Regex>,
}

impl TxIndex {
    /// The order of every row of `files` (the snapshot's decoded files of
    /// `transactions`), reusing `previous` when it covers a subset of them.
    /// `None` when the batches lack the sort columns.
    pub fn build(
        version: Option<u64>,
        files: &[CachedFile],
        previous: Option<&TxIndex>,
    ) -> Option<TxIndex> {
        let paths: Vec<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
        if let Some(prev) = previous {
            let now: HashSet<&PathBuf> = paths.iter().collect();
            if prev.files.iter().all(|p| now.contains(p)) {
                let had: HashSet<&PathBuf> = prev.files.iter().collect();
                let new: Vec<&CachedFile> =
                    files.iter().filter(|f| !had.contains(&f.path)).collect();
                return prev.extended(version, &new);
            }
        }
        let empty = TxIndex {
            version,
            files: Vec::new(),
            cols: Vec::new(),
            order: Vec::new(),
        };
        empty.extended(version, &files.iter().collect::<Vec<_>>())
    }

    /// This index with the rows of `new` merged in.
    fn extended(&self, version: Option<u64>, new: &[&CachedFile]) -> Option<TxIndex> {
        let base = u32::try_from(self.cols.len()).ok()?;
        let mut cols: Vec<Cols> = Vec::new();
        for f in new {
            for b in &f.batches {
                cols.push(Cols::of(b)?);
            }
        }
        let mut files = self.files.clone();
        files.extend(new.iter().map(|f| f.path.clone()));
        let mut all: Vec<Cols> = Vec::with_capacity(self.cols.len() + cols.len());
        all.extend(self.cols.iter().cloned());
        all.extend(cols);
        let mut fresh = Vec::new();
        for (i, c) in all.iter().enumerate().skip(base as usize) {
            let b = u32::try_from(i).ok()?;
            for r in 0..c.batch.num_rows() {
                fresh.push(Pos {
                    batch: b,
                    row: u32::try_from(r).ok()?,
                });
            }
        }
        let cmp = |a: &Pos, b: &Pos| key_cmp(&all, *a, *b);
        fresh.sort_unstable_by(cmp);
        let mut order = Vec::with_capacity(self.order.len() + fresh.len());
        let (mut i, mut j) = (0, 0);
        while i < self.order.len() && j < fresh.len() {
            if cmp(&fresh[j], &self.order[i]) == Ordering::Less {
                order.push(fresh[j]);
                j += 1;
            } else {
                order.push(self.order[i]);
                i += 1;
            }
        }
        order.extend_from_slice(&self.order[i..]);
        order.extend_from_slice(&fresh[j..]);
        Some(TxIndex {
            version,
            files,
            cols: all,
            order,
        })
    }

    /// The Delta version of `transactions` it is for.
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// How many transactions it orders.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The first `limit` rows after the cursor that pass `f`, as one batch;
    /// `None` when a filtered column is missing or of another type (then
    /// SQL answers the page).
    pub fn page(&self, f: &TxFilter, limit: usize) -> Option<RecordBatch> {
        let first = self.cols.first()?;
        let need = |given: bool, has: bool| !given || has;
        if !(need(f.account.is_some(), first.account_id.is_some())
            && need(f.category.is_some(), first.category.is_some())
            && need(f.currency.is_some(), first.currency.is_some())
            && need(
                f.min_amount.is_some() || f.max_amount.is_some(),
                first.amount_minor.is_some(),
            )
            && need(f.needs_review.is_some(), first.needs_review.is_some())
            && need(
                f.text.is_some(),
                first.description.is_some() && first.counterparty.is_some(),
            ))
        {
            return None;
        }
        let text = match &f.text {
            Some(t) => Some(
                regex::RegexBuilder::new(&regex::escape(t))
                    .case_insensitive(true)
                    .build()
                    .ok()?,
            ),
            None => None,
        };
        let c = Compiled { f, text };
        // Rows before the cursor or `from` are skipped by binary search;
        // null event times sort last and pass neither.
        let mut start = 0;
        if let Some((t, s, id)) = &f.after {
            // The first row whose key sorts after the cursor's (the same
            // order as the index, so the predicate is monotone).
            start = self.order.partition_point(|p| {
                let col = &self.cols[p.batch as usize];
                let r = p.row as usize;
                cmp_nulls_last(col.time(r), Some(*t))
                    .then_with(|| cmp_nulls_last(col.source.get(r), Some(s.as_str())))
                    .then_with(|| cmp_nulls_last(col.transaction_id.get(r), Some(id.as_str())))
                    != Ordering::Greater
            });
        }
        if let Some(from) = f.from {
            let at = self.order.partition_point(|p| {
                self.cols[p.batch as usize]
                    .time(p.row as usize)
                    .is_some_and(|t| t < from)
            });
            start = start.max(at);
        }
        let mut picked: Vec<(usize, usize)> = Vec::with_capacity(limit.min(1024));
        for p in &self.order[start..] {
            if picked.len() >= limit {
                break;
            }
            let col = &self.cols[p.batch as usize];
            let r = p.row as usize;
            let Some(t) = col.time(r) else {
                // Null event times come last: no time bound or cursor
                // passes them.
                if f.after.is_some() || f.from.is_some() || f.to.is_some() {
                    break;
                }
                if c.passes(col, r) {
                    picked.push((p.batch as usize, r));
                }
                continue;
            };
            if f.to.is_some_and(|to| t >= to) {
                break;
            }
            // SQL's cursor test refuses a null source or id at the cursor's
            // time, which the sort places after it.
            if let Some((ct, s, id)) = &f.after {
                if t == *ct {
                    let after = match (col.source.get(r), col.transaction_id.get(r)) {
                        (Some(rs), _) if rs > s.as_str() => true,
                        (Some(rs), Some(rid)) => rs == s.as_str() && rid > id.as_str(),
                        _ => false,
                    };
                    if !after {
                        continue;
                    }
                }
            }
            if c.passes(col, r) {
                picked.push((p.batch as usize, r));
            }
        }
        if picked.is_empty() {
            return Some(first.batch.slice(0, 0));
        }
        // Only the batches the page touches.
        let mut used: Vec<usize> = picked.iter().map(|(b, _)| *b).collect();
        used.sort_unstable();
        used.dedup();
        let batches: Vec<&RecordBatch> = used.iter().map(|&b| &self.cols[b].batch).collect();
        let local: Vec<(usize, usize)> = picked
            .iter()
            .map(|(b, r)| (used.binary_search(b).unwrap_or(0), *r))
            .collect();
        interleave_record_batch(&batches, &local).ok()
    }
}

fn key_cmp(cols: &[Cols], a: Pos, b: Pos) -> Ordering {
    let (ca, cb) = (&cols[a.batch as usize], &cols[b.batch as usize]);
    let (ra, rb) = (a.row as usize, b.row as usize);
    cmp_nulls_last(ca.time(ra), cb.time(rb))
        .then_with(|| cmp_nulls_last(ca.source.get(ra), cb.source.get(rb)))
        .then_with(|| cmp_nulls_last(ca.transaction_id.get(ra), cb.transaction_id.get(rb)))
}

/// `column = value`: a null or missing column never equals.
#[inline]
fn eq(column: &Option<Strs>, r: usize, want: &Option<String>) -> bool {
    match want {
        None => true,
        Some(w) => column
            .as_ref()
            .and_then(|c| c.get(r))
            .is_some_and(|v| v == w),
    }
}

impl Compiled<'_> {
    fn passes(&self, c: &Cols, r: usize) -> bool {
        let f = self.f;
        if !(eq(&c.currency, r, &f.currency)
            && eq(&c.account_id, r, &f.account)
            && eq(&c.category, r, &f.category)
            && f.source
                .as_ref()
                .is_none_or(|s| c.source.get(r) == Some(s.as_str())))
        {
            return false;
        }
        if f.min_amount.is_some() || f.max_amount.is_some() {
            let Some(a) = c
                .amount_minor
                .as_ref()
                .and_then(|a| a.is_valid(r).then(|| a.value(r)))
            else {
                return false;
            };
            if f.min_amount.is_some_and(|m| a < m) || f.max_amount.is_some_and(|m| a > m) {
                return false;
            }
        }
        if let Some(want) = f.needs_review {
            let got = c
                .needs_review
                .as_ref()
                .and_then(|a| a.is_valid(r).then(|| a.value(r)));
            if got != Some(want) {
                return false;
            }
        }
        if let Some(re) = &self.text {
            let hit = |s: &Option<Strs>| {
                s.as_ref()
                    .and_then(|s| s.get(r))
                    .is_some_and(|v| re.is_match(v))
            };
            if !(hit(&c.description) || hit(&c.counterparty)) {
                return false;
            }
        }
        true
    }
}

/// The index of the snapshot last served, rebuilt (or extended) when the
/// `transactions` version moves; one build at a time.
#[derive(Debug, Default)]
pub struct TxIndexCache {
    current: tokio::sync::Mutex<Option<Arc<TxIndex>>>,
}

impl TxIndexCache {
    /// The index for `version` of `transactions`, whose decoded files are
    /// `files`.
    pub async fn get(&self, version: Option<u64>, files: &[CachedFile]) -> Option<Arc<TxIndex>> {
        let mut cur = self.current.lock().await;
        if let Some(idx) = cur.as_ref().filter(|i| i.version == version) {
            return Some(idx.clone());
        }
        let built = Arc::new(TxIndex::build(version, files, cur.as_deref())?);
        *cur = Some(built.clone());
        Some(built)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Transaction;
    use crate::api::{
        encode_cursor, sql_page, transaction, transaction_filters, transactions_of,
        TransactionQuery,
    };
    use crate::rows::rows;
    use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
    use datafusion::catalog::MemTable;
    use datafusion::prelude::SessionContext;

    /// xorshift64*: reproducible without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a>(&mut self, from: &[Option<&'a str>]) -> Option<&'a str> {
            from[self.below(from.len())]
        }
        fn chance(&mut self, percent: usize) -> bool {
            self.below(100) < percent
        }
    }

    const DAY: i64 = 86_400_000_000;
    const BASE: i64 = 1_735_689_600_000_000; // 2025-01-01
    const SOURCES: &[Option<&str>] = &[Some("bank"), Some("card"), Some("Bank")];
    const ACCOUNTS: &[Option<&str>] = &[Some("acc-1"), Some("acc-2"), None];
    const CURRENCIES: &[Option<&str>] = &[Some("USD"), Some("EUR"), Some("usd")];
    const CATEGORIES: &[Option<&str>] = &[Some("Rent"), Some("Food"), Some("rent"), None];
    const TEXTS: &[Option<&str>] = &[
        Some("Coffee Shop"),
        Some("coffee"),
        Some("RENT payment"),
        Some("Straße café"),
        Some("ÉCOLE"),
        Some("100% off_sale"),
        Some("a\\b"),
        None,
    ];
    const PARTIES: &[Option<&str>] = &[Some("ACME"), Some("acme ltd"), Some("Café Noir"), None];

    fn schema() -> SchemaRef {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        Arc::new(Schema::new(vec![
            Field::new("source", DataType::Utf8, true),
            Field::new("transaction_id", DataType::Utf8, true),
            Field::new("account_id", DataType::Utf8, true),
            Field::new("amount_minor", DataType::Int64, true),
            Field::new("currency", DataType::Utf8, true),
            Field::new("description", DataType::Utf8, true),
            Field::new("counterparty", DataType::Utf8, true),
            Field::new("category", DataType::Utf8, true),
            Field::new("needs_review", DataType::Boolean, true),
            Field::new("event_time", ts, true),
        ]))
    }

    /// `n` rows; ids are unique (`next` counts them), times repeat so
    /// that the source and id decide the order of many rows.
    fn batch(rng: &mut Rng, n: usize, next: &mut usize) -> RecordBatch {
        let mut cols: Vec<Vec<Option<String>>> = vec![Vec::new(); 7];
        let (mut amounts, mut review, mut times) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            *next += 1;
            let s = |o: Option<&str>| o.map(str::to_string);
            cols[0].push(s(rng.pick(SOURCES)));
            cols[1].push(Some(format!("{}-{}", rng.below(50), next)));
            cols[2].push(s(rng.pick(ACCOUNTS)));
            cols[3].push(s(rng.pick(CURRENCIES)));
            cols[4].push(s(rng.pick(TEXTS)));
            cols[5].push(s(rng.pick(PARTIES)));
            cols[6].push(s(rng.pick(CATEGORIES)));
            amounts.push((!rng.chance(5)).then(|| rng.below(20_001) as i64 - 10_000));
            review.push((!rng.chance(10)).then(|| rng.chance(30)));
            times.push((!rng.chance(3)).then(|| BASE + rng.below(20) as i64 * DAY));
        }
        let s = |v: &Vec<Option<String>>| Arc::new(StringArray::from(v.clone())) as ArrayRef;
        RecordBatch::try_new(
            schema(),
            vec![
                s(&cols[0]),
                s(&cols[1]),
                s(&cols[2]),
                Arc::new(Int64Array::from(amounts)),
                s(&cols[3]),
                s(&cols[4]),
                s(&cols[5]),
                s(&cols[6]),
                Arc::new(BooleanArray::from(review)),
                Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")),
            ],
        )
        .unwrap()
    }

    fn files(rng: &mut Rng) -> Vec<CachedFile> {
        let mut next = 0;
        (0..4)
            .map(|f| CachedFile {
                path: PathBuf::from(format!("part-{f}.parquet")),
                batches: (0..=f).map(|_| batch(rng, 60, &mut next)).collect(),
            })
            .collect()
    }

    fn date(rng: &mut Rng) -> String {
        let d = chrono::DateTime::from_timestamp_micros(BASE + rng.below(22) as i64 * DAY - DAY)
            .unwrap();
        if rng.chance(50) {
            d.format("%Y-%m-%d").to_string()
        } else {
            (d + chrono::Duration::hours(rng.below(30) as i64)).to_rfc3339()
        }
    }

    /// A random query; its cursor is the key of a random row of `all`.
    fn query(rng: &mut Rng, all: &RecordBatch) -> TransactionQuery {
        let mut o = |p: usize, from: &[Option<&str>]| {
            (rng.chance(p)).then(|| rng.pick(from).unwrap_or("none").to_string())
        };
        let account = o(20, ACCOUNTS);
        let category = o(20, CATEGORIES);
        let currency = o(30, CURRENCIES);
        let source = o(20, SOURCES);
        let q = o(
            25,
            &[
                Some("coffee"),
                Some("CAFÉ"),
                Some("é"),
                Some("%"),
                Some("_"),
                Some("\\"),
                Some("acme"),
                Some("STRASSE"),
                Some("straße"),
                Some("zzz"),
            ],
        );
        let from = rng.chance(25).then(|| date(rng));
        let to = rng.chance(25).then(|| date(rng));
        let min_amount = rng.chance(20).then(|| rng.below(20_001) as i64 - 10_000);
        let max_amount = rng.chance(20).then(|| rng.below(20_001) as i64 - 10_000);
        let needs_review = rng.chance(20).then(|| rng.chance(50));
        let cursor = rng.chance(60).then(|| {
            let r = rng.below(all.num_rows());
            let t = all
                .column(9)
                .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
            let t = if t.is_valid(r) {
                t.value(r)
            } else {
                BASE + 3 * DAY
            };
            let s = all.column(0).as_string::<i32>();
            let id = all.column(1).as_string::<i32>();
            encode_cursor(&serde_json::json!([
                t,
                if s.is_valid(r) { s.value(r) } else { "bank" },
                id.value(r)
            ]))
        });
        TransactionQuery {
            account,
            category,
            currency,
            source,
            from,
            to,
            min_amount,
            max_amount,
            needs_review,
            q,
            limit: None,
            cursor,
        }
    }

    #[tokio::test]
    async fn index_pages_equal_the_sql_pages_on_random_filters() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let files = files(&mut rng);
        let all_batches: Vec<RecordBatch> = files.iter().flat_map(|f| f.batches.clone()).collect();
        let all = datafusion::arrow::compute::concat_batches(&schema(), &all_batches).unwrap();
        let ctx = SessionContext::new();
        ctx.register_table(
            "transactions",
            Arc::new(MemTable::try_new(schema(), vec![all_batches.clone()]).unwrap()),
        )
        .unwrap();
        // Built in two steps (a merge), and from scratch: the same order.
        let first = TxIndex::build(Some(1), &files[..2], None).unwrap();
        let merged = TxIndex::build(Some(2), &files, Some(&first)).unwrap();
        let scratch = TxIndex::build(Some(2), &files, None).unwrap();
        assert_eq!(merged.order, scratch.order);
        assert_eq!(merged.len(), all.num_rows());
        // A file gone (compaction): rebuilt over what is left.
        let rebuilt = TxIndex::build(Some(3), &files[1..], Some(&merged)).unwrap();
        assert_eq!(rebuilt.len(), all.num_rows() - 60);

        let (mut nonempty, mut both) = (0, 0);
        for i in 0..300 {
            let q = query(&mut rng, &all);
            let limit = 1 + rng.below(40);
            let (filter, wanted) = transaction_filters(&q).unwrap();
            let want = sql_page(&ctx, filter, limit).await.unwrap();
            let page = merged.page(&wanted, limit).unwrap();
            let got = rows(std::slice::from_ref(&page));
            // Read straight from the batch: what the JSON rows give (both
            // refuse a page with a null in a required column).
            let json = |t: Transaction| serde_json::to_value(t).unwrap();
            let direct: Option<Vec<_>> =
                transactions_of(&page).map(|v| v.into_iter().map(json).collect());
            let general: Option<Vec<_>> = got
                .iter()
                .map(|r| transaction(r.clone()).ok().map(json))
                .collect();
            assert_eq!(direct, general, "query {i}");
            both += usize::from(direct.is_some() && !got.is_empty());
            if got != want {
                let at = got.iter().zip(&want).position(|(a, b)| a != b);
                panic!(
                    "query {i}: {q:?} limit {limit}: {} rows, SQL {}; first difference at {at:?}: {:?} / {:?}",
                    got.len(),
                    want.len(),
                    at.map(|a| &got[a]),
                    at.map(|a| &want[a]),
                );
            }
            nonempty += usize::from(!want.is_empty());
        }
        assert!(nonempty > 100, "too few queries found rows: {nonempty}");
        assert!(both > 20, "too few pages read both ways: {both}");

        // Paging to the end: every row once, in order.
        let mut seen = Vec::new();
        let mut wanted = TxFilter::default();
        loop {
            let page = rows(&[merged.page(&wanted, 17).unwrap()]);
            let Some(last) = page.last() else { break };
            let t = chrono::DateTime::parse_from_rfc3339(last["event_time"].as_str().unwrap_or(""))
                .map(|d| d.timestamp_micros());
            seen.extend(page.iter().map(|r| r["transaction_id"].clone()));
            match t {
                Ok(t) => {
                    wanted.after = Some((
                        t,
                        last["source"].as_str().unwrap_or_default().to_string(),
                        last["transaction_id"].as_str().unwrap().to_string(),
                    ))
                }
                Err(_) => break,
            }
        }
        // A cursor passes no null event time (as in SQL), so the pages hold
        // every row with a time, each once.
        let nulls = all.column(9).null_count();
        assert!(nulls > 0);
        let distinct: HashSet<String> = seen.iter().map(|v| v.to_string()).collect();
        assert_eq!(distinct.len(), seen.len());
        assert_eq!(seen.len(), all.num_rows() - nulls);
    }
}
