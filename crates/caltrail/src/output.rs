//! Printing tabular results as an aligned table, CSV or JSON Lines. Knows nothing of what the
//! rows mean.

use std::io::{self, Write};

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// RFC 4180 CSV with a header line.
    Csv,
    /// JSON Lines: one object per row.
    Json,
}

pub(crate) use caltrail_sql::Cell;

/// A cell as a JSON value: a list as an array of texts.
fn cell_json(cell: &Cell) -> serde_json::Value {
    match cell {
        Cell::Null => serde_json::Value::Null,
        Cell::Bool(b) => serde_json::Value::Bool(*b),
        Cell::Int(i) => serde_json::Value::from(*i),
        Cell::Float(f) => serde_json::Value::from(*f),
        Cell::Text(s) => serde_json::Value::String(s.clone()),
        Cell::List(items) => {
            serde_json::Value::Array(items.iter().cloned().map(serde_json::Value::String).collect())
        }
    }
}

fn is_number(cell: &Cell) -> bool {
    matches!(cell, Cell::Int(_) | Cell::Float(_))
}

/// Rows under named columns.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

impl From<caltrail_sql::Rows> for Table {
    fn from(rows: caltrail_sql::Rows) -> Table {
        Table { columns: rows.columns, rows: rows.rows }
    }
}

impl Table {
    pub(crate) fn new(columns: &[&str]) -> Table {
        Table { columns: columns.iter().map(|c| (*c).to_owned()).collect(), rows: Vec::new() }
    }

    pub(crate) fn write(&self, format: Format, out: &mut dyn Write) -> io::Result<()> {
        match format {
            Format::Table => self.write_table(out),
            Format::Csv => self.write_csv(out),
            Format::Json => self.write_json(out),
        }
    }

    fn write_table(&self, out: &mut dyn Write) -> io::Result<()> {
        let texts: Vec<Vec<String>> =
            self.rows.iter().map(|row| row.iter().map(Cell::text).collect()).collect();
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, name)| {
                texts.iter().map(|row| row[i].chars().count()).max().unwrap_or(0).max(name.len())
            })
            .collect();
        let last = self.columns.len().saturating_sub(1);
        let mut line = String::new();
        for (i, name) in self.columns.iter().enumerate() {
            pad(&mut line, name, widths[i], false, i == last);
        }
        writeln!(out, "{}", line.trim_end())?;
        for (row, cells) in texts.iter().zip(&self.rows) {
            line.clear();
            for (i, text) in row.iter().enumerate() {
                pad(&mut line, text, widths[i], is_number(&cells[i]), i == last);
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }

    fn write_csv(&self, out: &mut dyn Write) -> io::Result<()> {
        // RFC 4180 quoting where a field needs it, LF line ends as the other formats have.
        let mut writer =
            csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(out);
        let to_io = |e: csv::Error| io::Error::other(e);
        writer.write_record(&self.columns).map_err(to_io)?;
        for row in &self.rows {
            writer.write_record(row.iter().map(Cell::text)).map_err(to_io)?;
        }
        writer.flush()
    }

    fn write_json(&self, out: &mut dyn Write) -> io::Result<()> {
        for row in &self.rows {
            let object: serde_json::Map<String, serde_json::Value> =
                self.columns.iter().cloned().zip(row.iter().map(cell_json)).collect();
            writeln!(out, "{}", serde_json::Value::Object(object))?;
        }
        Ok(())
    }
}

fn pad(line: &mut String, text: &str, width: usize, right: bool, last: bool) {
    let fill = width.saturating_sub(text.chars().count());
    if right {
        line.extend(std::iter::repeat_n(' ', fill));
        line.push_str(text);
    } else {
        line.push_str(text);
        if !last {
            line.extend(std::iter::repeat_n(' ', fill));
        }
    }
    if !last {
        line.push_str("  ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut table = Table::new(&["seq", "name"]);
        table.rows.push(vec![Cell::Int(1), Cell::from("a, \"b\"")]);
        table.rows.push(vec![Cell::Int(10), Cell::Null]);
        table
    }

    fn render(format: Format) -> String {
        let mut out = Vec::new();
        sample().write(format, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn formats() {
        assert_eq!(render(Format::Table), "seq  name\n  1  a, \"b\"\n 10\n");
        assert_eq!(render(Format::Csv), "seq,name\n1,\"a, \"\"b\"\"\"\n10,\n");
        assert_eq!(
            render(Format::Json),
            "{\"seq\":1,\"name\":\"a, \\\"b\\\"\"}\n{\"seq\":10,\"name\":null}\n"
        );
    }
}
