//! Query results as rows of typed cells, so that no crate but this one handles Arrow:
//! timestamps as RFC 3339 text in UTC, integers and booleans as themselves, lists of texts as
//! lists, everything else as Arrow displays it.

use caltrail_events::Timestamp;
use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch,
    TimestampMicrosecondArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::SqlError;

/// Rows under named columns: a query's result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    /// The column names, in order.
    pub columns: Vec<String>,
    /// The rows, each a cell per column.
    pub rows: Vec<Vec<Cell>>,
}

/// One value of a result.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// No value (SQL NULL).
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text; timestamps come as RFC 3339 text in UTC.
    Text(String),
    /// A list of texts, such as the ids a finding rests on: a JSON array in `json`, the texts
    /// joined by spaces elsewhere.
    List(Vec<String>),
}

impl Cell {
    /// The value as plain text: empty for NULL, a list's texts joined by spaces.
    pub fn text(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Bool(b) => b.to_string(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => f.to_string(),
            Cell::Text(s) => s.clone(),
            Cell::List(items) => items.join(" "),
        }
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::Text(s.to_owned())
    }
}
impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::Text(s)
    }
}
impl From<i64> for Cell {
    fn from(i: i64) -> Cell {
        Cell::Int(i)
    }
}
impl From<u64> for Cell {
    fn from(i: u64) -> Cell {
        Cell::Int(i64::try_from(i).unwrap_or(i64::MAX))
    }
}
impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(value: Option<T>) -> Cell {
        value.map_or(Cell::Null, Into::into)
    }
}

/// The rows of record batches as typed cells.
pub(crate) fn rows_of(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Rows, SqlError> {
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut table = Rows { columns, rows: Vec::new() };
    for batch in batches {
        let mut rows: Vec<Vec<Cell>> =
            vec![Vec::with_capacity(table.columns.len()); batch.num_rows()];
        for column in batch.columns() {
            for (i, row) in rows.iter_mut().enumerate() {
                row.push(cell(column.as_ref(), i)?);
            }
        }
        table.rows.extend(rows);
    }
    Ok(table)
}

fn cell(array: &dyn Array, i: usize) -> Result<Cell, SqlError> {
    if array.is_null(i) {
        return Ok(Cell::Null);
    }
    Ok(match array.data_type() {
        DataType::Int64 => {
            Cell::Int(array.as_any().downcast_ref::<Int64Array>().map_or(0, |a| a.value(i)))
        }
        DataType::Int32 => {
            Cell::Int(array.as_any().downcast_ref::<Int32Array>().map_or(0, |a| a.value(i)).into())
        }
        DataType::UInt64 => Cell::Int(
            array
                .as_any()
                .downcast_ref::<UInt64Array>()
                .map_or(0, |a| i64::try_from(a.value(i)).unwrap_or(i64::MAX)),
        ),
        DataType::Float64 => {
            Cell::Float(array.as_any().downcast_ref::<Float64Array>().map_or(0.0, |a| a.value(i)))
        }
        DataType::Boolean => {
            Cell::Bool(array.as_any().downcast_ref::<BooleanArray>().is_some_and(|a| a.value(i)))
        }
        DataType::Utf8 => Cell::Text(array.as_string::<i32>().value(i).to_owned()),
        DataType::LargeUtf8 => Cell::Text(array.as_string::<i64>().value(i).to_owned()),
        DataType::Utf8View => Cell::Text(array.as_string_view().value(i).to_owned()),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let micros = array
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .map_or(0, |a| a.value(i));
            match Timestamp::from_micros(micros) {
                Some(t) => Cell::Text(t.to_rfc3339()),
                None => Cell::Int(micros),
            }
        }
        DataType::List(_) => {
            let list = array.as_list::<i32>().value(i);
            let mut items = Vec::with_capacity(list.len());
            for j in 0..list.len() {
                match cell(list.as_ref(), j)? {
                    Cell::Text(text) => items.push(text),
                    Cell::Null => {}
                    other => items.push(other.text()),
                }
            }
            Cell::List(items)
        }
        _ => {
            let formatter = ArrayFormatter::try_new(array, &FormatOptions::default())
                .map_err(|e| SqlError::DataFusion(e.to_string()))?;
            Cell::Text(formatter.value(i).to_string())
        }
    })
}
