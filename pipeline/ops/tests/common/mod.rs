//! Helpers shared by the ops crate's integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{new_null_array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use finopsia_store::Store;

/// Appends rows given as column → text (cast to the column's type; the
/// columns not named are null).
pub async fn put(dir: &Path, table: &str, schema: SchemaRef, rows: &[Vec<(&str, String)>]) {
    let cols: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| {
            let texts: Vec<Option<String>> = rows
                .iter()
                .map(|r| {
                    r.iter()
                        .find(|(k, _)| *k == f.name())
                        .map(|(_, v)| v.clone())
                })
                .collect();
            if texts.iter().all(Option::is_none) {
                return new_null_array(f.data_type(), rows.len());
            }
            let a: ArrayRef = Arc::new(StringArray::from(texts));
            cast(&a, f.data_type()).unwrap()
        })
        .collect();
    let schema = finopsia_core::schema::nullable(&schema);
    let batch = RecordBatch::try_new(schema, cols).unwrap();
    let mut store = Store::open(dir).unwrap();
    store.append(table, vec![batch], None).await.unwrap();
}
