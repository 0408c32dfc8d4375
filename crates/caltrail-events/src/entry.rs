//! The stored form of a ledger entry: the bytes that are hashed and kept. Encoding and decoding
//! only; where the bytes live and how they are chained belongs to the store.
//!
//! An entry is one CBOR map, definite lengths, shortest integers, keys in this order:
//! `format` (1), `seq`, `recorded_at` (RFC 3339 text, UTC) and `event` (the canonical event:
//! `id`, `type`, `at`, `actor`?, `note`?, `data`). Absent optional fields are left out, so an
//! optional field added to the contract later does not change the bytes of events without it.

use crate::cbor::{self, CborError};
use crate::event::Event;
use crate::fields::FieldError;
use crate::types::Timestamp;
use crate::value::Value;

/// The entry format this code writes and reads.
pub const ENTRY_FORMAT: i128 = 1;

/// An entry as decoded from its stored bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The entry's place in the ledger, from 1.
    pub seq: u64,
    /// When the ledger recorded it.
    pub recorded_at: Timestamp,
    /// The event as the user gave it.
    pub event: Event,
}

/// Why stored bytes are not an entry. The bytes are evidence; they are never repaired.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not well-formed CBOR.
    #[error("not CBOR: {0}")]
    NotCbor(String),
    /// Well-formed CBOR of another shape than an entry.
    #[error("CBOR that the ledger never writes: {0}")]
    UnexpectedCbor(String),
    /// An entry of a format this code does not read.
    #[error("entry format {0} is not one this caltrail reads (it reads format 1)")]
    UnknownFormat(i128),
    /// An entry whose event the contract refuses.
    #[error("not a valid entry: {0}")]
    Invalid(FieldError),
}

/// What the ledger keeps beside an entry's bytes, read from the bytes without decoding the
/// event: `verify` compares it with the columns of every entry. Texts are the bytes of the CBOR
/// text strings, not checked for UTF-8: they are compared with stored text, byte for byte, and
/// `Entry::decode` is what checks an entry's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryColumns<'a> {
    /// The entry's sequence number.
    pub seq: u64,
    /// The encoded recording time.
    pub recorded_at: &'a [u8],
    /// The event id's bytes.
    pub id: &'a [u8],
    /// The event type's bytes.
    pub event_type: &'a [u8],
    /// The encoded valid time.
    pub at: &'a [u8],
    /// The pack an event creates (`Event::new_keypack`).
    pub keypack: Option<&'a [u8]>,
}

impl<'a> EntryColumns<'a> {
    /// Reads the columns of stored bytes. It checks the CBOR is what the ledger writes and the
    /// fields are where an entry has them; it does not check the event as `Entry::decode` does.
    pub fn read(bytes: &'a [u8]) -> Result<EntryColumns<'a>, DecodeError> {
        let cbor = |e| match e {
            CborError::Malformed(m) => DecodeError::NotCbor(m),
            CborError::Unexpected(m) => DecodeError::UnexpectedCbor(m),
        };
        let invalid =
            |path: &str, message: &str| DecodeError::Invalid(FieldError::new(path, message));
        let mut c = cbor::Cursor::new(bytes);
        if c.map().map_err(cbor)? != 4 {
            return Err(invalid("", "an entry has 4 fields"));
        }
        let field = |c: &mut cbor::Cursor<'a>, name: &str| match c.text_bytes().map_err(cbor)? {
            key if key == name.as_bytes() => Ok(()),
            _ => Err(invalid(name, "is not where an entry has it")),
        };
        field(&mut c, "format")?;
        if c.integer().map_err(cbor)? != ENTRY_FORMAT {
            return Err(invalid("format", "must be 1"));
        }
        field(&mut c, "seq")?;
        let seq = u64::try_from(c.integer().map_err(cbor)?)
            .map_err(|_| invalid("seq", "must be a positive integer"))?;
        field(&mut c, "recorded_at")?;
        let recorded_at = c.text_bytes().map_err(cbor)?;
        field(&mut c, "event")?;
        let (mut id, mut event_type, mut at, mut keypack) = (None, None, None, None);
        for _ in 0..c.map().map_err(cbor)? {
            match c.text_bytes().map_err(cbor)? {
                b"id" => id = Some(c.text_bytes().map_err(cbor)?),
                b"type" => event_type = Some(c.text_bytes().map_err(cbor)?),
                b"at" => at = Some(c.text_bytes().map_err(cbor)?),
                b"data" if matches!(event_type, Some(b"keypack.installed" | b"cals.migrated")) => {
                    for _ in 0..c.map().map_err(cbor)? {
                        if c.text_bytes().map_err(cbor)? == b"keypack" {
                            keypack = Some(c.text_bytes().map_err(cbor)?);
                        } else {
                            c.skip().map_err(cbor)?;
                        }
                    }
                }
                _ => c.skip().map_err(cbor)?,
            }
        }
        c.end().map_err(cbor)?;
        let required =
            |value: Option<&'a [u8]>, path: &str| value.ok_or_else(|| invalid(path, "is required"));
        Ok(EntryColumns {
            seq,
            recorded_at,
            id: required(id, "event.id")?,
            event_type: required(event_type, "event.type")?,
            at: required(at, "event.at")?,
            keypack,
        })
    }
}

/// Decodes entries one after another, as a ledger holds them (`Entry::decode` for each). The
/// entries of one append share their recording time, whose text is read once per run of them.
#[derive(Debug, Default)]
pub struct EntryDecoder<'a> {
    /// The last recording time read, as stored and as a value.
    recorded_at: Option<(&'a [u8], Timestamp)>,
}

impl<'a> EntryDecoder<'a> {
    /// `Entry::decode` of the next entry's bytes.
    pub fn decode(&mut self, bytes: &'a [u8]) -> Result<Entry, DecodeError> {
        match Entry::decode_canonical(bytes, &mut self.recorded_at) {
            Some(entry) => Ok(entry),
            None => Entry::decode_tree(bytes),
        }
    }
}

impl Entry {
    /// The canonical bytes of the entry.
    pub fn encode(&self) -> Vec<u8> {
        Entry::encode_parts(self.seq, self.recorded_at, &self.event.to_cbor())
    }

    /// The canonical bytes of an entry whose event is already encoded with `Event::to_cbor`:
    /// the same bytes as `encode`, for callers that encode events ahead of knowing their `seq`.
    pub fn encode_parts(seq: u64, recorded_at: Timestamp, event_cbor: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(event_cbor.len() + 64);
        cbor::encode_head(5, 4, &mut bytes);
        cbor::encode_text("format", &mut bytes);
        cbor::encode_integer(ENTRY_FORMAT, &mut bytes);
        cbor::encode_text("seq", &mut bytes);
        cbor::encode_integer(seq.into(), &mut bytes);
        cbor::encode_text("recorded_at", &mut bytes);
        cbor::encode_text(&recorded_at.to_rfc3339(), &mut bytes);
        cbor::encode_text("event", &mut bytes);
        bytes.extend_from_slice(event_cbor);
        bytes
    }

    /// Decodes stored bytes, checking the event exactly as an input line is checked.
    ///
    /// The ledger writes entries in one canonical form, and those are read straight from the
    /// bytes (`decode_canonical`). Anything else, and anything the checks refuse, is read again
    /// as a value tree, which gives the same entry or says exactly what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Entry, DecodeError> {
        EntryDecoder::default().decode(bytes)
    }

    /// The entry, when `bytes` are exactly what `encode` writes for a valid one. `last` is
    /// the text of a recording time read before and its value, and becomes this entry's.
    pub(crate) fn decode_canonical<'a>(
        bytes: &'a [u8],
        last: &mut Option<(&'a [u8], Timestamp)>,
    ) -> Option<Entry> {
        let mut c = cbor::Cursor::new(bytes);
        let key = |c: &mut cbor::Cursor<'_>, name: &[u8]| {
            c.text_bytes().ok().filter(|key| crate::bytes::same(key, name)).map(drop)
        };
        (c.map().ok()? == 4).then_some(())?;
        key(&mut c, b"format")?;
        (c.integer().ok()? == ENTRY_FORMAT).then_some(())?;
        key(&mut c, b"seq")?;
        let seq = u64::try_from(c.integer().ok()?).ok().filter(|n| *n >= 1)?;
        key(&mut c, b"recorded_at")?;
        let text = c.text_bytes().ok()?;
        let recorded_at = match *last {
            Some((last_text, last_value)) if last_text == text => last_value,
            _ => Timestamp::parse_bytes(text)?,
        };
        *last = Some((text, recorded_at));
        key(&mut c, b"event")?;
        let event = Event::from_canonical(&mut c)?;
        c.end().ok()?;
        Some(Entry { seq, recorded_at, event })
    }

    /// `decode` through a value tree: any CBOR the ledger could hold, with errors that name
    /// the field.
    pub(crate) fn decode_tree(bytes: &[u8]) -> Result<Entry, DecodeError> {
        let value = cbor::decode(bytes).map_err(|e| match e {
            CborError::Malformed(m) => DecodeError::NotCbor(m),
            CborError::Unexpected(m) => DecodeError::UnexpectedCbor(m),
        })?;
        let Value::Object(fields) = &value else {
            return Err(DecodeError::UnexpectedCbor(format!("{} at the top", value.kind())));
        };
        let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_ref()).collect();
        if keys.first() == Some(&"format")
            && let Value::Integer(format) = fields[0].1
            && format != ENTRY_FORMAT
        {
            return Err(DecodeError::UnknownFormat(format));
        }
        if keys != ["format", "seq", "recorded_at", "event"] {
            return Err(DecodeError::Invalid(FieldError::new(
                "",
                format!(
                    "keys {keys:?}, expected [\"format\", \"seq\", \"recorded_at\", \"event\"]"
                ),
            )));
        }
        if fields[0].1 != Value::Integer(ENTRY_FORMAT) {
            return Err(DecodeError::Invalid(FieldError::new("format", "must be 1")));
        }
        let seq = match &fields[1].1 {
            Value::Integer(n) => u64::try_from(*n).ok().filter(|n| *n >= 1),
            _ => None,
        }
        .ok_or_else(|| {
            DecodeError::Invalid(FieldError::new("seq", "must be a positive integer"))
        })?;
        let recorded_at = match &fields[2].1 {
            Value::Text(text) => Timestamp::parse(text)
                .map_err(|m| DecodeError::Invalid(FieldError::new("recorded_at", m)))?,
            _ => {
                return Err(DecodeError::Invalid(FieldError::new(
                    "recorded_at",
                    "must be a string",
                )));
            }
        };
        let event = Event::from_value_at(&fields[3].1, "event").map_err(DecodeError::Invalid)?;
        Ok(Entry { seq, recorded_at, event })
    }
}
