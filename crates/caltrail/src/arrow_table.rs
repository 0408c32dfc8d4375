//! Turning Arrow record batches into printable tables: timestamps as RFC 3339 text in UTC,
//! integers and booleans as themselves, everything else as Arrow displays it.

use caltrail_events::Timestamp;
use caltrail_sql::arrow::array::{
    Array, AsArray, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch,
    TimestampMicrosecondArray, UInt64Array,
};
use caltrail_sql::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use caltrail_sql::arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::output::{Cell, Table};

pub(crate) fn to_table(schema: &SchemaRef, batches: &[RecordBatch]) -> anyhow::Result<Table> {
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let mut table = Table::new(&columns);
    for batch in batches {
        let mut rows: Vec<Vec<Cell>> = vec![Vec::with_capacity(columns.len()); batch.num_rows()];
        for column in batch.columns() {
            for (i, row) in rows.iter_mut().enumerate() {
                row.push(cell(column.as_ref(), i)?);
            }
        }
        table.rows.extend(rows);
    }
    Ok(table)
}

fn cell(array: &dyn Array, i: usize) -> anyhow::Result<Cell> {
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
            let formatter = ArrayFormatter::try_new(array, &FormatOptions::default())?;
            Cell::Text(formatter.value(i).to_string())
        }
    })
}
