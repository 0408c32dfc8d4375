//! Reading the rows of an export, whatever wrote it: `Export-Csv` (with or without the `#TYPE`
//! line, any column order, WMI or CIM system columns, `,` or `;` as the separator), a monitoring
//! agent's re-export (a leading section line such as `<<<rds_licenses:sep(44)>>>`, a header
//! naming one more column than its rows carry) or `ConvertTo-Json` (an array, or one object), in
//! UTF-8 or UTF-16 with a byte order mark. Knows nothing of what a column means.

use std::collections::HashMap;
use std::fmt;

use crate::error::{ExportError, RowError};

/// Which PowerShell output a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Export-Csv, with `,` or `;`.
    Csv,
    /// ConvertTo-Json.
    Json,
}

impl ExportFormat {
    /// The format's name, as messages give it.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Json => "json",
        }
    }
}

/// One value as the export holds it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Field {
    Text(String),
    Json(serde_json::Value),
}

/// One object of the export: its position and its columns by lower-case name.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// 1 for the first object.
    pub row: usize,
    /// The file line it starts on, for CSV.
    pub line: Option<usize>,
    fields: HashMap<String, Field>,
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "row {} (line {line})", self.row),
            None => write!(f, "object {}", self.row),
        }
    }
}

impl Record {
    pub(crate) fn error(&self, column: &str, message: impl Into<String>) -> RowError {
        RowError { place: self.to_string(), column: column.to_owned(), message: message.into() }
    }

    /// The value's text, `None` when the column is absent, empty or null.
    pub(crate) fn text(&self, column: &str) -> Option<String> {
        match self.fields.get(&column.to_ascii_lowercase())? {
            Field::Text(s) | Field::Json(serde_json::Value::String(s)) if s.is_empty() => None,
            Field::Json(serde_json::Value::Null) => None,
            Field::Text(s) | Field::Json(serde_json::Value::String(s)) => Some(s.clone()),
            Field::Json(other) => Some(other.to_string()),
        }
    }

    pub(crate) fn has_column(&self, column: &str) -> bool {
        self.fields.contains_key(&column.to_ascii_lowercase())
    }

    /// A whole number, from a JSON number or a text of digits.
    pub(crate) fn integer(&self, column: &str) -> Result<Option<i64>, RowError> {
        let Some(text) = self.text(column) else { return Ok(None) };
        text.trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| self.error(column, format!("must be a whole number, got {text:?}")))
    }

    pub(crate) fn required_integer(&self, column: &str) -> Result<i64, RowError> {
        if !self.has_column(column) {
            return Err(self.error(column, "the column is missing"));
        }
        self.integer(column)?.ok_or_else(|| self.error(column, "is empty"))
    }
}

/// Decodes the bytes of an export file to text: UTF-8 (with or without a byte order mark) or
/// UTF-16 with one, as Windows PowerShell's `Out-File` writes by default.
pub fn decode_text(bytes: &[u8]) -> Result<String, ExportError> {
    if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        return utf16(rest, u16::from_le_bytes);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        return utf16(rest, u16::from_be_bytes);
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.contains(&0) {
        return Err(ExportError::NotText {
            detail: "it holds NUL bytes: UTF-16 without a byte order mark? Save it as UTF-8".into(),
        });
    }
    String::from_utf8(bytes.to_vec()).map_err(|e| ExportError::NotText {
        detail: format!("not UTF-8 (invalid byte at offset {})", e.utf8_error().valid_up_to()),
    })
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Result<String, ExportError> {
    if !bytes.len().is_multiple_of(2) {
        return Err(ExportError::NotText { detail: "UTF-16 with an odd number of bytes".into() });
    }
    let units: Vec<u16> = bytes.chunks_exact(2).map(|c| unit([c[0], c[1]])).collect();
    String::from_utf16(&units).map_err(|_| ExportError::NotText { detail: "invalid UTF-16".into() })
}

/// Reads every object of an export.
pub(crate) fn read_records(bytes: &[u8]) -> Result<(ExportFormat, Vec<Record>), ExportError> {
    records_of_text(&decode_text(bytes)?)
}

/// Reads every object of an export already decoded to text.
pub(crate) fn records_of_text(text: &str) -> Result<(ExportFormat, Vec<Record>), ExportError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        return Ok((ExportFormat::Json, read_json(trimmed)?));
    }
    Ok((ExportFormat::Csv, read_csv(text)?))
}

fn read_json(text: &str) -> Result<Vec<Record>, ExportError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ExportError::Json { detail: e.to_string() })?;
    let objects = match value {
        serde_json::Value::Array(items) => items,
        object @ serde_json::Value::Object(_) => vec![object],
        _ => unreachable!("the text starts with [ or {{"),
    };
    objects
        .into_iter()
        .enumerate()
        .map(|(i, object)| match object {
            serde_json::Value::Object(map) => Ok(Record {
                row: i + 1,
                line: None,
                fields: map
                    .into_iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), Field::Json(v)))
                    .collect(),
            }),
            other => Err(ExportError::Json {
                detail: format!("object {} is not an object but {other}", i + 1),
            }),
        })
        .collect()
}

/// The separators an export may use, as the header line shows them.
const SEPARATORS: [u8; 3] = [b',', b';', b'\t'];

/// A monitoring agent's section line (`<<<name>>>` or `<<<name:sep(59)>>>`), and the separator
/// it names, if any.
#[allow(
    clippy::option_option,
    reason = "not a section line; a section line without a separator; one with"
)]
fn section_line(line: &str) -> Option<Option<u8>> {
    let inner = line.trim().strip_prefix("<<<")?.strip_suffix(">>>")?;
    let separator = inner
        .split(':')
        .find_map(|option| option.strip_prefix("sep(")?.strip_suffix(')')?.parse::<u8>().ok());
    Some(separator)
}

/// The separator of a header line: the one it holds most often outside quotes (`,` on a tie).
fn separator_of(header: &str) -> u8 {
    let mut counts = [0usize; SEPARATORS.len()];
    let mut quoted = false;
    for byte in header.bytes() {
        if byte == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(i) = SEPARATORS.iter().position(|s| *s == byte) {
            counts[i] += 1;
        }
    }
    let mut best = 0;
    for i in 1..SEPARATORS.len() {
        if counts[i] > counts[best] {
            best = i;
        }
    }
    SEPARATORS[best]
}

fn read_csv(text: &str) -> Result<Vec<Record>, ExportError> {
    // Lines before the header: `Export-Csv` in Windows PowerShell writes `#TYPE <class>` unless
    // -NoTypeInformation; monitoring agents write a section line.
    let mut skipped_lines = 0;
    let mut body = text;
    let mut named_separator = None;
    loop {
        let (line, rest) = match body.find('\n') {
            Some(end) => (&body[..end], &body[end + 1..]),
            None => (body, ""),
        };
        if line.starts_with("#TYPE") {
            (skipped_lines, body) = (skipped_lines + 1, rest);
        } else if let Some(separator) = section_line(line) {
            named_separator = named_separator.or(separator);
            (skipped_lines, body) = (skipped_lines + 1, rest);
        } else {
            break;
        }
    }
    let header_line = body.lines().next().unwrap_or("");
    let separator = named_separator.unwrap_or_else(|| separator_of(header_line));
    let mut reader =
        csv::ReaderBuilder::new().delimiter(separator).flexible(true).from_reader(body.as_bytes());
    // As the file spells them, for messages; compared in lower case.
    let mut names: Vec<String> = reader
        .headers()
        .map_err(|e| ExportError::Csv { detail: e.to_string() })?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let mut headers: Vec<String> = names.iter().map(|h| h.to_ascii_lowercase()).collect();
    if headers.iter().all(String::is_empty) {
        return Err(ExportError::Csv { detail: "no header line".into() });
    }
    let rows: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .map_err(|e| ExportError::Csv { detail: e.to_string() })?;
    // A header naming one more column than every row carries: that column is absent.
    if !rows.is_empty() && rows.iter().all(|row| row.len() + 1 == headers.len()) {
        headers.pop();
        names.pop();
    }
    let mut records = Vec::new();
    // Lines are counted here from each record's byte offset: the reader's own count differs
    // between LF and CRLF files. The lines skipped before the header come first.
    let (mut counted_to, mut newlines) = (0usize, 0usize);
    for (i, row) in rows.iter().enumerate() {
        let line = row.position().map(|p| {
            let mut start = usize::try_from(p.byte()).unwrap_or(usize::MAX).min(body.len());
            // After a CRLF the reader's offset may point at the line feed: the record starts
            // past it.
            while start < body.len() && matches!(body.as_bytes()[start], b'\r' | b'\n') {
                start += 1;
            }
            newlines += body.as_bytes()[counted_to.min(start)..start]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            counted_to = counted_to.max(start);
            newlines + 1 + skipped_lines
        });
        if row.len() != headers.len() {
            let place = match line {
                Some(line) => format!("row {} (line {line})", i + 1),
                None => format!("row {}", i + 1),
            };
            let detail = match names.get(row.len()) {
                Some(column) => format!(
                    "{place}, column {column}: no value (the row has {} values where the header names {} columns)",
                    row.len(),
                    headers.len()
                ),
                None => format!(
                    "{place}: {} values where the header names {} columns",
                    row.len(),
                    headers.len()
                ),
            };
            return Err(ExportError::Csv { detail });
        }
        let fields =
            headers.iter().cloned().zip(row.iter().map(|v| Field::Text(v.to_owned()))).collect();
        records.push(Record { row: i + 1, line, fields });
    }
    Ok(records)
}
