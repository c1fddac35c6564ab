//! Event-time window state: merges per-micro-batch partial aggregates
//! (from [`crate::sql::WindowQuery::partial_sql`]) into windows, and builds
//! the rows to emit.
//!
//! State is keyed by window start, then by the group key (Arrow row format).
//! A window is *dirty* when it changed since it was last emitted. The engine
//! decides when to emit (watermark past end + lateness, or end of a bounded
//! input) and evicts closed windows; a later record for an evicted window
//! reloads the emitted rows from the store ([`WindowState::load`]) before
//! merging, so late data corrects the window instead of being dropped.
//!
//! Integer sums and counts are merged with checked arithmetic: an overflow
//! is an error naming the table, window and aggregate, never a wrap. Merging
//! is staged ([`WindowState::stage`], then [`WindowState::apply`]) so the
//! engine can check a batch's windows before it commits the batch's records.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch,
    TimestampMicrosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Field, Float64Type, Int64Type, Schema, SchemaRef,
    TimestampMicrosecondType,
};
use datafusion::arrow::row::{RowConverter, SortField};

use crate::error::{Error, Result};
use crate::sql::{AggKind, WindowQuery};
use finopsia_core::schema::ts_type;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Val {
    Null,
    I(i64),
    F(f64),
}

#[derive(Debug, Default)]
struct Window {
    /// Group key in Arrow row format → aggregate values.
    groups: HashMap<Box<[u8]>, Vec<Val>>,
    dirty: bool,
}

/// Merged values of the windows a batch touches, not yet applied
/// ([`WindowState::stage`]).
#[derive(Debug, Default)]
pub struct Staged {
    updates: BTreeMap<i64, HashMap<Box<[u8]>, Vec<Val>>>,
}

pub struct WindowState {
    pub query: WindowQuery,
    converter: RowConverter,
    key_fields: Vec<Field>,
    agg_types: Vec<DataType>,
    /// Output table schema: window_start, window_end, keys…, aggregates….
    pub output_schema: SchemaRef,
    windows: BTreeMap<i64, Window>,
}

impl WindowState {
    /// `partial_schema` is the schema of the query's partial SQL output.
    pub fn new(query: WindowQuery, partial_schema: &Schema) -> Result<WindowState> {
        let err = |m: String| Error::Query {
            file: query.file.clone(),
            message: m,
        };
        let key_fields: Vec<Field> = query
            .keys
            .iter()
            .map(|k| {
                let f = partial_schema
                    .field_with_name(k)
                    .map_err(|e| err(e.to_string()))?;
                let dt = match f.data_type() {
                    DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
                    other => other.clone(),
                };
                Ok(Field::new(k, dt, true))
            })
            .collect::<Result<_>>()?;
        let agg_types = query
            .aggs
            .iter()
            .map(|(name, _)| {
                let f = partial_schema.field_with_name(name).map_err(|e| err(e.to_string()))?;
                match f.data_type() {
                    DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => Ok(DataType::Int64),
                    // Integer sums widened by the partial SQL (crate::widen),
                    // narrowed back with a check in `stage`.
                    DataType::Decimal128(_, 0) => Ok(DataType::Int64),
                    DataType::Float32 | DataType::Float64 => Ok(DataType::Float64),
                    other => Err(err(format!("aggregate {name} has type {other}; only integer and float aggregates are supported"))),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let converter = RowConverter::new(
            key_fields
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        let mut fields = vec![
            Field::new("window_start", ts_type(), true),
            Field::new("window_end", ts_type(), true),
        ];
        fields.extend(key_fields.iter().cloned());
        for ((name, _), dt) in query.aggs.iter().zip(&agg_types) {
            fields.push(Field::new(name, dt.clone(), true));
        }
        Ok(WindowState {
            query,
            converter,
            key_fields,
            agg_types,
            output_schema: Arc::new(Schema::new(fields)),
            windows: BTreeMap::new(),
        })
    }

    pub fn window_count(&self) -> usize {
        self.windows.len()
    }

    /// Window starts a pane belongs to (one for tumble, width/slide for hop).
    fn windows_of(&self, pane: i64) -> impl Iterator<Item = i64> {
        let (w, s) = (self.query.width_us, self.query.slide_us);
        (0..w / s).map(move |i| pane - i * s)
    }

    /// Window starts touched by these partials that are not in memory.
    pub fn missing(&self, partials: &[RecordBatch]) -> Result<BTreeSet<i64>> {
        let mut out = BTreeSet::new();
        for b in partials {
            let panes = panes(b)?;
            for p in panes.iter().flatten() {
                for w in self.windows_of(p) {
                    if !self.windows.contains_key(&w) {
                        out.insert(w);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Makes sure each start has an entry (empty when nothing was stored).
    pub fn touch(&mut self, starts: &BTreeSet<i64>) {
        for s in starts {
            self.windows.entry(*s).or_default();
        }
    }

    fn conform(&self, col: &ArrayRef, dt: &DataType) -> Result<ArrayRef> {
        Ok(if col.data_type() == dt {
            col.clone()
        } else {
            cast(col, dt)?
        })
    }

    /// Computes what merging partial aggregates (columns: __pane, keys…,
    /// aggs…) would make of the windows they touch, without changing any:
    /// an overflow is an error naming the table, window and aggregate, and
    /// leaves the state as it was. [`WindowState::apply`] makes it so.
    pub fn stage(&self, partials: &[RecordBatch]) -> Result<Staged> {
        let nk = self.key_fields.len();
        let mut updates: BTreeMap<i64, HashMap<Box<[u8]>, Vec<Val>>> = BTreeMap::new();
        for b in partials {
            if b.num_rows() == 0 {
                continue;
            }
            let panes = panes(b)?;
            let keys = (0..nk)
                .map(|i| self.conform(b.column(1 + i), self.key_fields[i].data_type()))
                .collect::<Result<Vec<_>>>()?;
            let rows = self.converter.convert_columns(&keys)?;
            let aggs = (0..self.agg_types.len())
                .map(|i| {
                    let col = b.column(1 + nk + i);
                    if matches!(col.data_type(), DataType::Decimal128(_, 0)) {
                        Ok(col.clone())
                    } else {
                        self.conform(col, &self.agg_types[i])
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            for r in 0..b.num_rows() {
                if panes.is_null(r) {
                    continue;
                }
                let vals = aggs
                    .iter()
                    .zip(&self.query.aggs)
                    .map(|(a, (name, _))| {
                        narrow(a, r).ok_or_else(|| {
                            Error::Engine(format!(
                                "{}: {name} overflows i64 in the window starting {}",
                                self.query.target,
                                finopsia_core::timefmt::format_micros(panes.value(r))
                            ))
                        })
                    })
                    .collect::<Result<Vec<Val>>>()?;
                let key = rows.row(r);
                for w in self.windows_of(panes.value(r)) {
                    let window = updates.entry(w).or_default();
                    match window.get_mut(key.as_ref()) {
                        Some(acc) => self.merge_vals(w, acc, &vals)?,
                        None => {
                            let mut acc = self
                                .windows
                                .get(&w)
                                .and_then(|win| win.groups.get(key.as_ref()))
                                .cloned();
                            match &mut acc {
                                Some(acc) => self.merge_vals(w, acc, &vals)?,
                                None => acc = Some(vals.clone()),
                            }
                            window.insert(key.as_ref().into(), acc.expect("set"));
                        }
                    }
                }
            }
        }
        Ok(Staged { updates })
    }

    /// Applies merged values from [`WindowState::stage`] (marking the
    /// windows dirty).
    pub fn apply(&mut self, staged: Staged) {
        for (start, groups) in staged.updates {
            let window = self.windows.entry(start).or_default();
            window.dirty = true;
            window.groups.extend(groups);
        }
    }

    /// Merges partial aggregates: [`WindowState::stage`], then apply.
    pub fn merge(&mut self, partials: &[RecordBatch]) -> Result<()> {
        let staged = self.stage(partials)?;
        self.apply(staged);
        Ok(())
    }

    /// Merges one group's new partial values into `acc`, checked.
    fn merge_vals(&self, start: i64, acc: &mut [Val], new: &[Val]) -> Result<()> {
        for (i, ((name, kind), n)) in self.query.aggs.iter().zip(new).enumerate() {
            acc[i] = match (acc[i], *n) {
                (a, Val::Null) => a,
                (Val::Null, b) => b,
                (Val::I(a), Val::I(b)) => Val::I(match kind {
                    AggKind::Sum | AggKind::Count => a.checked_add(b).ok_or_else(|| {
                        Error::Engine(format!(
                            "{}: {name} overflows i64 in the window starting {} ({a} + {b})",
                            self.query.target,
                            finopsia_core::timefmt::format_micros(start)
                        ))
                    })?,
                    AggKind::Min => a.min(b),
                    AggKind::Max => a.max(b),
                }),
                (a, b) => {
                    let (a, b) = (as_f64(a), as_f64(b));
                    Val::F(match kind {
                        AggKind::Sum | AggKind::Count => a + b,
                        AggKind::Min => a.min(b),
                        AggKind::Max => a.max(b),
                    })
                }
            };
        }
        Ok(())
    }

    /// Loads emitted (or checkpointed) rows in output schema, replacing any
    /// in-memory state of those windows. `dirty` marks them for emission.
    pub fn load(&mut self, batches: &[RecordBatch], dirty: Option<&BooleanArray>) -> Result<()> {
        let nk = self.key_fields.len();
        for b in batches {
            if b.num_rows() == 0 {
                continue;
            }
            let col = |name: &str| -> Result<ArrayRef> {
                b.column_by_name(name).cloned().ok_or_else(|| {
                    Error::Engine(format!(
                        "{}: column {name} missing in stored window rows",
                        self.query.target
                    ))
                })
            };
            let starts = cast(&col("window_start")?, &ts_type())?;
            let starts = starts.as_primitive::<TimestampMicrosecondType>();
            let keys = (0..nk)
                .map(|i| {
                    self.conform(
                        &col(self.key_fields[i].name())?,
                        self.key_fields[i].data_type(),
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            let rows = self.converter.convert_columns(&keys)?;
            let aggs = (0..self.agg_types.len())
                .map(|i| self.conform(&col(&self.query.aggs[i].0)?, &self.agg_types[i]))
                .collect::<Result<Vec<_>>>()?;
            for r in 0..b.num_rows() {
                let window = self.windows.entry(starts.value(r)).or_default();
                if dirty.is_some_and(|d| d.value(r)) {
                    window.dirty = true;
                }
                window.groups.insert(
                    rows.row(r).as_ref().into(),
                    aggs.iter().map(|a| value(a, r)).collect(),
                );
            }
        }
        Ok(())
    }

    /// Dirty windows that should be emitted now: all of them on `flush`,
    /// else those whose end + lateness is at or before the watermark.
    pub fn due(&self, watermark: Option<i64>, lateness_us: i64, flush: bool) -> Vec<i64> {
        self.windows
            .iter()
            .filter(|(start, w)| w.dirty && (flush || self.closed(**start, watermark, lateness_us)))
            .map(|(s, _)| *s)
            .collect()
    }

    fn closed(&self, start: i64, watermark: Option<i64>, lateness_us: i64) -> bool {
        watermark.is_some_and(|wm| {
            start
                .saturating_add(self.query.width_us)
                .saturating_add(lateness_us)
                <= wm
        })
    }

    /// Rows of the given windows in output schema (plus `__dirty` if asked).
    pub fn build(&self, starts: &[i64], with_dirty: bool) -> Result<RecordBatch> {
        let parser = self.converter.parser();
        let mut start_col = Vec::new();
        let mut rows = Vec::new();
        let mut vals: Vec<&Vec<Val>> = Vec::new();
        let mut dirty = Vec::new();
        for s in starts {
            let Some(w) = self.windows.get(s) else {
                continue;
            };
            for (k, v) in &w.groups {
                start_col.push(*s);
                rows.push(parser.parse(k));
                vals.push(v);
                dirty.push(w.dirty);
            }
        }
        let ends: Vec<i64> = start_col.iter().map(|s| s + self.query.width_us).collect();
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(TimestampMicrosecondArray::from(start_col).with_timezone("UTC")),
            Arc::new(TimestampMicrosecondArray::from(ends).with_timezone("UTC")),
        ];
        cols.extend(self.converter.convert_rows(rows)?);
        for (i, dt) in self.agg_types.iter().enumerate() {
            cols.push(match dt {
                DataType::Float64 => Arc::new(
                    vals.iter()
                        .map(|v| match v[i] {
                            Val::F(f) => Some(f),
                            Val::I(x) => Some(x as f64),
                            Val::Null => None,
                        })
                        .collect::<Float64Array>(),
                ),
                _ => Arc::new(
                    vals.iter()
                        .map(|v| match v[i] {
                            Val::I(x) => Some(x),
                            Val::F(f) => Some(f as i64),
                            Val::Null => None,
                        })
                        .collect::<Int64Array>(),
                ),
            });
        }
        let mut schema = self.output_schema.as_ref().clone();
        if with_dirty {
            cols.push(Arc::new(BooleanArray::from(dirty)));
            let mut fields: Vec<Field> =
                schema.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(Field::new("__dirty", DataType::Boolean, false));
            schema = Schema::new(fields);
        }
        Ok(RecordBatch::try_new(Arc::new(schema), cols)?)
    }

    /// All windows, with dirty flags (for checkpoints).
    pub fn snapshot(&self) -> Result<RecordBatch> {
        let starts: Vec<i64> = self.windows.keys().copied().collect();
        self.build(&starts, true)
    }

    pub fn mark_clean(&mut self, starts: &[i64]) {
        for s in starts {
            if let Some(w) = self.windows.get_mut(s) {
                w.dirty = false;
            }
        }
    }

    /// Drops clean windows past end + lateness from memory.
    pub fn evict(&mut self, watermark: Option<i64>, lateness_us: i64) -> usize {
        let closed: Vec<i64> = self
            .windows
            .iter()
            .filter(|(s, w)| !w.dirty && self.closed(**s, watermark, lateness_us))
            .map(|(s, _)| *s)
            .collect();
        for s in &closed {
            self.windows.remove(s);
        }
        closed.len()
    }
}

/// The `__pane` column as UTC microseconds (date_bin may return another unit).
fn panes(b: &RecordBatch) -> Result<TimestampMicrosecondArray> {
    Ok(cast(b.column(0), &ts_type())?
        .as_primitive::<TimestampMicrosecondType>()
        .clone())
}

/// A partial aggregate's value; `None` when a widened integer sum does not
/// fit in `i64`.
fn narrow(a: &ArrayRef, r: usize) -> Option<Val> {
    if let DataType::Decimal128(_, 0) = a.data_type() {
        if a.is_null(r) {
            return Some(Val::Null);
        }
        let v = a.as_primitive::<Decimal128Type>().value(r);
        return i64::try_from(v).ok().map(Val::I);
    }
    Some(value(a, r))
}

fn value(a: &ArrayRef, r: usize) -> Val {
    if a.is_null(r) {
        return Val::Null;
    }
    match a.data_type() {
        DataType::Float64 => Val::F(a.as_primitive::<Float64Type>().value(r)),
        _ => Val::I(a.as_primitive::<Int64Type>().value(r)),
    }
}

fn as_f64(v: Val) -> f64 {
    match v {
        Val::I(i) => i as f64,
        Val::F(f) => f,
        Val::Null => 0.0,
    }
}
