//! The CBOR the ledger writes, read and written directly to and from `Value`: definite lengths,
//! shortest integers and lengths, text keys in the order given. Anything else in stored bytes is
//! refused, since the ledger never writes it.
//!
//! This is the hot path of `append`, `verify` and every replay, so it avoids the generic
//! `ciborium::Value` tree; the bytes are the same (a test encodes every fixture both ways).

use std::borrow::Cow;

use crate::value::Value;

/// How deep arrays and maps may nest. An event nests three levels; the limit keeps hostile
/// bytes from exhausting the stack.
const MAX_DEPTH: usize = 32;

const UNSIGNED: u8 = 0;
const NEGATIVE: u8 = 1;
const BYTES: u8 = 2;
const TEXT: u8 = 3;
const ARRAY: u8 = 4;
const MAP: u8 = 5;
const TAG: u8 = 6;
const SIMPLE: u8 = 7;

/// Appends the canonical encoding of `value`.
pub fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(0xf6),
        Value::Bool(false) => out.push(0xf4),
        Value::Bool(true) => out.push(0xf5),
        Value::Integer(i) => encode_integer(*i, out),
        Value::Float(f) => {
            // Never part of an event (the validator refuses them); written as a double.
            out.push(0xfb);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::Text(text) => encode_text(text, out),
        Value::Array(items) => {
            encode_head(ARRAY, items.len() as u64, out);
            for item in items {
                encode(item, out);
            }
        }
        Value::Object(fields) => {
            encode_head(MAP, fields.len() as u64, out);
            for (key, value) in fields {
                encode_text(key, out);
                encode(value, out);
            }
        }
    }
}

pub(crate) fn encode_text(text: &str, out: &mut Vec<u8>) {
    encode_head(TEXT, text.len() as u64, out);
    out.extend_from_slice(text.as_bytes());
}

pub(crate) fn encode_integer(i: i128, out: &mut Vec<u8>) {
    if i >= 0 {
        let n = u64::try_from(i).expect("invariant: the validator only admits integers CBOR holds");
        encode_head(UNSIGNED, n, out);
    } else {
        let n = u64::try_from(-1 - i)
            .expect("invariant: the validator only admits integers CBOR holds");
        encode_head(NEGATIVE, n, out);
    }
}

pub(crate) fn encode_head(major: u8, n: u64, out: &mut Vec<u8>) {
    let major = major << 5;
    if n < 24 {
        out.push(major | n as u8);
    } else if u8::try_from(n).is_ok() {
        out.extend_from_slice(&[major | 24, n as u8]);
    } else if u16::try_from(n).is_ok() {
        out.push(major | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if u32::try_from(n).is_ok() {
        out.push(major | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(major | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Why bytes are not the CBOR the ledger writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CborError {
    /// Not well-formed CBOR at all: cut short, or not UTF-8 where text must be.
    Malformed(String),
    /// Well-formed CBOR of a kind the ledger never writes.
    Unexpected(String),
}

/// Reads `bytes` a second time with ciborium, a CBOR reader written by other people, and
/// compares its reading with [`decode`]'s: `verify --deep` reads every entry both ways, so the
/// ledger's format has two independent readers and a fault in either shows as a disagreement.
pub fn cross_check(bytes: &[u8]) -> Result<(), String> {
    let ours = decode(bytes).map_err(|e| format!("this reader refuses them: {e:?}"))?;
    let mut rest = bytes;
    let theirs: ciborium::Value = ciborium::de::from_reader(&mut rest)
        .map_err(|e| format!("ciborium cannot read them: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("ciborium reads one item and leaves {} bytes", rest.len()));
    }
    let theirs = Value::from_cbor(theirs).map_err(|e| format!("ciborium reads {e}"))?;
    if ours != theirs {
        return Err("ciborium and this reader decode them to different values".to_owned());
    }
    Ok(())
}

/// Decodes one item that must fill `bytes` exactly.
pub fn decode(bytes: &[u8]) -> Result<Value<'_>, CborError> {
    let mut reader = Reader { bytes, at: 0 };
    let value = reader.value(0)?;
    if reader.at != bytes.len() {
        return Err(CborError::Unexpected(format!(
            "{} bytes after the item",
            bytes.len() - reader.at
        )));
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    #[expect(clippy::inline_always, reason = "read for every field of every entry; measured")]
    #[inline(always)]
    fn take(&mut self, n: usize) -> Result<&'a [u8], CborError> {
        match self.bytes.get(self.at..).and_then(|rest| rest.get(..n)) {
            Some(taken) => {
                self.at += n;
                Ok(taken)
            }
            None => Err(self.cut_short()),
        }
    }

    #[cold]
    fn cut_short(&self) -> CborError {
        CborError::Malformed(format!("cut short at byte {}", self.bytes.len()))
    }

    /// The major type and argument of the next item, refusing indefinite lengths and arguments
    /// not in their shortest form.
    #[expect(clippy::inline_always, reason = "read for every field of every entry; measured")]
    #[inline(always)]
    fn head(&mut self) -> Result<(u8, u8, u64), CborError> {
        // Almost every head of an entry carries its argument in its own byte (keys, short
        // texts, maps of fields, small integers): read here, inline, with nothing to check.
        if let Some(&initial) = self.bytes.get(self.at)
            && initial & 0x1f < 24
        {
            self.at += 1;
            return Ok((initial >> 5, initial & 0x1f, u64::from(initial & 0x1f)));
        }
        self.head_with_argument()
    }

    /// `head` for an argument in the bytes after the first (or none: cut short, reserved,
    /// indefinite).
    #[inline(never)]
    fn head_with_argument(&mut self) -> Result<(u8, u8, u64), CborError> {
        let offset = self.at;
        let initial = self.take(1)?[0];
        let (major, info) = (initial >> 5, initial & 0x1f);
        let n = match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.take(1)?[0]),
            25 => u64::from(u16::from_be_bytes(self.take(2)?.try_into().unwrap_or_default())),
            26 => u64::from(u32::from_be_bytes(self.take(4)?.try_into().unwrap_or_default())),
            27 => u64::from_be_bytes(self.take(8)?.try_into().unwrap_or_default()),
            31 => {
                return Err(CborError::Unexpected(format!(
                    "an indefinite length at byte {offset}"
                )));
            }
            _ => {
                return Err(CborError::Malformed(format!(
                    "reserved additional information {info} at byte {offset}"
                )));
            }
        };
        let shortest = match info {
            24 => n >= 24,
            25 => n > u64::from(u8::MAX),
            26 => n > u64::from(u16::MAX),
            27 => n > u64::from(u32::MAX),
            _ => true,
        };
        // Floats (major 7 with 25..27) carry bits, not a number, so have no shortest form here.
        if !shortest && major != SIMPLE {
            return Err(CborError::Unexpected(format!(
                "a number not in its shortest form at byte {offset}"
            )));
        }
        Ok((major, info, n))
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, CborError> {
        if depth > MAX_DEPTH {
            return Err(CborError::Unexpected(format!("nesting deeper than {MAX_DEPTH}")));
        }
        let offset = self.at;
        let (major, info, n) = self.head()?;
        Ok(match major {
            UNSIGNED => Value::Integer(i128::from(n)),
            NEGATIVE => Value::Integer(-1 - i128::from(n)),
            TEXT => Value::Text(Cow::Borrowed(self.text(n, offset)?)),
            ARRAY => {
                let mut items = Vec::with_capacity(self.capacity(n));
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            MAP => {
                let mut fields: Vec<(Cow<'a, str>, Value<'a>)> =
                    Vec::with_capacity(self.capacity(n));
                for _ in 0..n {
                    let key_offset = self.at;
                    let (key_major, _, key_len) = self.head()?;
                    if key_major != TEXT {
                        return Err(CborError::Unexpected(format!(
                            "a map key that is not text at byte {key_offset}"
                        )));
                    }
                    let key = self.text(key_len, key_offset)?;
                    if fields.iter().any(|(k, _)| k == key) {
                        return Err(CborError::Unexpected(format!("the map key {key:?} twice")));
                    }
                    let value = self.value(depth + 1)?;
                    fields.push((Cow::Borrowed(key), value));
                }
                Value::Object(fields)
            }
            BYTES => {
                return Err(CborError::Unexpected(format!("a byte string at byte {offset}")));
            }
            TAG => return Err(CborError::Unexpected(format!("the tag {n} at byte {offset}"))),
            _ => match info {
                20 => Value::Bool(false),
                21 => Value::Bool(true),
                22 => Value::Null,
                25 => Value::Float(f64::from(half_to_f32(n as u16))),
                26 => Value::Float(f64::from(f32::from_bits(n as u32))),
                27 => Value::Float(f64::from_bits(n)),
                _ => {
                    return Err(CborError::Unexpected(format!(
                        "the simple value {n} at byte {offset}"
                    )));
                }
            },
        })
    }

    /// The next `len` bytes, `len` as a head gives it.
    #[expect(clippy::inline_always, reason = "read for every field of every entry; measured")]
    #[inline(always)]
    fn take_len(&mut self, len: u64) -> Result<&'a [u8], CborError> {
        let len = usize::try_from(len).map_err(|_| self.cut_short())?;
        self.take(len)
    }

    #[inline]
    fn text(&mut self, len: u64, offset: usize) -> Result<&'a str, CborError> {
        utf8(self.take_len(len)?).ok_or_else(|| {
            CborError::Malformed(format!("a text string that is not UTF-8 at byte {offset}"))
        })
    }

    /// A count read from the bytes is not trusted for an allocation: each item takes a byte.
    fn capacity(&self, n: u64) -> usize {
        usize::try_from(n).unwrap_or(usize::MAX).min(self.bytes.len() - self.at)
    }
}

/// `bytes` as text, if they are UTF-8. `std::str::from_utf8` returns its result through memory,
/// written a word at a time; read back as one 16-byte copy, the processor stalled on it for
/// every text of every entry (measured). Out of line, this function returns its answer in two
/// registers, read from that memory a word at a time.
#[inline(never)]
fn utf8(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

/// A walk over stored bytes that reads the items it is asked for and skips the rest, borrowing
/// text: for checks that need a few fields of every entry, not the event.
pub struct Cursor<'a> {
    reader: Reader<'a>,
}

impl<'a> Cursor<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor { reader: Reader { bytes, at: 0 } }
    }

    /// The number of fields of the map that comes next.
    #[inline]
    pub fn map(&mut self) -> Result<u64, CborError> {
        self.expect(MAP, "a map")
    }

    /// Reads a text string.
    #[inline]
    pub fn text(&mut self) -> Result<&'a str, CborError> {
        let offset = self.reader.at;
        let len = self.expect(TEXT, "a text string")?;
        self.reader.text(len, offset)
    }

    /// The bytes of the text string that comes next, not checked for UTF-8: for comparing with
    /// bytes known to be text, where the check would only cost time.
    #[expect(clippy::inline_always, reason = "read for every field of every entry; measured")]
    #[inline(always)]
    pub fn text_bytes(&mut self) -> Result<&'a [u8], CborError> {
        let len = self.expect(TEXT, "a text string")?;
        self.reader.take_len(len)
    }

    /// Reads an integer, positive or negative.
    pub fn integer(&mut self) -> Result<i128, CborError> {
        let offset = self.reader.at;
        match self.reader.head()? {
            (UNSIGNED, _, n) => Ok(i128::from(n)),
            (NEGATIVE, _, n) => Ok(-1 - i128::from(n)),
            _ => Err(CborError::Unexpected(format!("not an integer at byte {offset}"))),
        }
    }

    /// Reads a text string, an integer or a boolean as `decode` reads it into `slot`; `false`,
    /// with the item read or not and `slot` as it was, for anything else. It writes the slot in
    /// place: a value returned was built on the stack and copied with loads of another width
    /// than its stores, which stalled the processor on every field (a quarter of the decoding
    /// function's samples; measured).
    #[expect(clippy::inline_always, reason = "read for every field of every entry; measured")]
    #[inline(always)]
    pub fn scalar_into(&mut self, slot: &mut Option<Value<'a>>) -> Result<bool, CborError> {
        let offset = self.reader.at;
        match self.reader.head()? {
            (UNSIGNED, _, n) => *slot = Some(Value::Integer(i128::from(n))),
            (NEGATIVE, _, n) => *slot = Some(Value::Integer(-1 - i128::from(n))),
            (TEXT, _, n) => *slot = Some(Value::Text(Cow::Borrowed(self.reader.text(n, offset)?))),
            (SIMPLE, 20, _) => *slot = Some(Value::Bool(false)),
            (SIMPLE, 21, _) => *slot = Some(Value::Bool(true)),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Skips one item without building it, checking its structure as `decode` would. Text it
    /// skips, keys included, is not checked for UTF-8: a caller that needs the text reads it.
    pub fn skip(&mut self) -> Result<(), CborError> {
        self.skip_at(1)
    }

    /// One item at `depth`: a scalar here, in line wherever this is called (a map's value
    /// included: every field of every entry's data, which `verify` skips), the rest in
    /// `skip_nested`.
    #[expect(clippy::inline_always, reason = "read for every field of every entry; measured")]
    #[inline(always)]
    fn skip_at(&mut self, depth: usize) -> Result<(), CborError> {
        if depth > MAX_DEPTH {
            return Err(CborError::Unexpected(format!("nesting deeper than {MAX_DEPTH}")));
        }
        let offset = self.reader.at;
        let (major, info, n) = self.reader.head()?;
        match major {
            UNSIGNED | NEGATIVE => Ok(()),
            TEXT => self.reader.take_len(n).map(drop),
            SIMPLE if matches!(info, 20..=22 | 25..=27) => Ok(()),
            _ => self.skip_nested(depth, offset, major, n),
        }
    }

    /// `skip_at` for an item that is not a scalar: an array's or a map's items, or a refusal.
    #[inline(never)]
    fn skip_nested(
        &mut self,
        depth: usize,
        offset: usize,
        major: u8,
        n: u64,
    ) -> Result<(), CborError> {
        match major {
            ARRAY => (0..n).try_for_each(|_| self.skip_at(depth + 1)),
            MAP => (0..n).try_for_each(|_| {
                self.text_bytes()?;
                self.skip_at(depth + 1)
            }),
            BYTES => Err(CborError::Unexpected(format!("a byte string at byte {offset}"))),
            TAG => Err(CborError::Unexpected(format!("the tag {n} at byte {offset}"))),
            _ => Err(CborError::Unexpected(format!("the simple value {n} at byte {offset}"))),
        }
    }

    /// Checks that nothing follows.
    pub fn end(&self) -> Result<(), CborError> {
        let left = self.reader.bytes.len() - self.reader.at;
        if left == 0 {
            Ok(())
        } else {
            Err(CborError::Unexpected(format!("{left} bytes after the item")))
        }
    }

    #[expect(clippy::inline_always, reason = "read for every field of every entry; measured")]
    #[inline(always)]
    fn expect(&mut self, major: u8, what: &str) -> Result<u64, CborError> {
        let offset = self.reader.at;
        match self.reader.head()? {
            (found, _, n) if found == major => Ok(n),
            _ => Err(not_what(what, offset)),
        }
    }
}

#[cold]
fn not_what(what: &str, offset: usize) -> CborError {
    CborError::Unexpected(format!("not {what} at byte {offset}"))
}

/// IEEE 754 half precision to single, exactly.
fn half_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let fraction = f32::from(bits & 0x3ff);
    sign * match exponent {
        0 => fraction * 2f32.powi(-24),
        31 if fraction == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        _ => (1.0 + fraction / 1024.0) * 2f32.powi(exponent - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ciborium_bytes(value: &Value) -> Vec<u8> {
        let mut bytes = Vec::new();
        ciborium::ser::into_writer(&value.to_cbor(), &mut bytes).unwrap();
        bytes
    }

    #[test]
    fn encodes_as_ciborium_does() {
        let mut values = vec![Value::Null, Value::Bool(true), Value::Bool(false)];
        for i in [0i128, 1, 23, 24, 255, 256, 65_535, 65_536, 4_294_967_295, 4_294_967_296] {
            values.push(Value::Integer(i));
            values.push(Value::Integer(-i - 1));
        }
        values.push(Value::Integer(u64::MAX.into()));
        values.push(Value::Integer(-1 - i128::from(u64::MAX)));
        for len in [0, 1, 23, 24, 255, 256, 70_000] {
            values.push(Value::Text(("é".repeat(len / 2) + &"x".repeat(len % 2)).into()));
            values.push(Value::Array(vec![Value::Integer(7); len]));
        }
        values.push(Value::Object(vec![
            ("b".into(), Value::Integer(1)),
            ("a".into(), Value::Array(vec![Value::Text("x".into()), Value::Null])),
        ]));
        for value in values {
            let mut mine = Vec::new();
            encode(&value, &mut mine);
            assert_eq!(mine, ciborium_bytes(&value), "{value:?}");
            assert_eq!(decode(&mine), Ok(value));
        }
    }

    #[test]
    fn skipping_checks_what_decoding_checks() {
        let good = [0xa2, 0x61, b'a', 0x82, 0x01, 0xf5, 0x61, b'b', 0x63, b'x', b'y', b'z'];
        let mut cursor = Cursor::new(&good);
        assert_eq!(cursor.skip(), Ok(()));
        assert_eq!(cursor.end(), Ok(()));
        for bad in [&[0x41, 0x00][..], &[0x62, b'a'], &[0xf7], &[0x18, 0x05], &[0xa1, 0x01, 0x02]] {
            assert!(Cursor::new(bad).skip().is_err(), "{bad:x?}");
            assert!(decode(bad).is_err(), "{bad:x?}");
        }
    }

    /// A map's values are skipped as an array's items are: every first byte, with what may
    /// follow it, and at every depth around the limit.
    #[test]
    fn a_maps_values_are_skipped_as_an_arrays_items_are() {
        let skipped = |bytes: &[u8]| {
            let mut cursor = Cursor::new(bytes);
            cursor.skip().map(|()| cursor.reader.at)
        };
        for initial in 0..=u8::MAX {
            for rest in [&[][..], &[0x00], &[0x61, 0x62, 0x63], &[0x18, 0x20, 0x21, 0x22]] {
                let value: Vec<u8> = std::iter::once(initial).chain(rest.iter().copied()).collect();
                let in_map = skipped(&[&[0xa1, 0x61, b'k'][..], &value].concat());
                let in_array = skipped(&[&[0x81][..], &value].concat());
                // Errors name their byte, which the prefixes move: where the skip ended, or not.
                assert_eq!(
                    in_map.ok().map(|at| at - 3),
                    in_array.ok().map(|at| at - 1),
                    "{value:x?}"
                );
            }
        }
        for depth in MAX_DEPTH - 2..=MAX_DEPTH + 2 {
            let mut in_maps = [0xa1, 0x61, b'k'].repeat(depth);
            let mut in_arrays = [0x81].repeat(depth);
            for bytes in [&mut in_maps, &mut in_arrays] {
                bytes.extend_from_slice(&[0x61, b'x']);
            }
            assert_eq!(skipped(&in_maps).is_ok(), skipped(&in_arrays).is_ok(), "{depth}");
            assert_eq!(skipped(&in_maps).is_ok(), depth < MAX_DEPTH, "{depth}");
        }
    }

    #[test]
    fn ciborium_agrees_on_what_the_ledger_writes_and_not_on_what_it_never_writes() {
        let value = Value::Object(vec![
            (Cow::Borrowed("format"), Value::Integer(1)),
            (Cow::Borrowed("text"), Value::Text(Cow::Borrowed("ls01.contoso.com"))),
            (Cow::Borrowed("list"), Value::Array(vec![Value::Bool(true), Value::Null])),
        ]);
        let mut bytes = Vec::new();
        encode(&value, &mut bytes);
        assert_eq!(cross_check(&bytes), Ok(()));
        // 24 written in two bytes: valid CBOR, which ciborium reads, but not canonical.
        assert!(cross_check(&[0x18, 0x01]).is_err());
        // A second item after the first.
        let mut two = bytes.clone();
        two.push(0xf6);
        assert!(cross_check(&two).is_err());
    }

    #[test]
    fn decodes_floats_as_ciborium_does() {
        for bytes in [
            &[0xf9, 0x3c, 0x00][..],
            &[0xf9, 0x80, 0x01],
            &[0xf9, 0x7b, 0xff],
            &[0xfa, 0x47, 0xc3, 0x50, 0x00],
            &[0xfb, 0x3f, 0xf1, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a],
        ] {
            let theirs: ciborium::Value = ciborium::de::from_reader(bytes).unwrap();
            assert_eq!(decode(bytes), Ok(Value::from_cbor(theirs).unwrap()), "{bytes:x?}");
        }
    }

    #[test]
    fn refuses_what_the_ledger_never_writes() {
        let cases: &[(&[u8], &str)] = &[
            (&[], "Malformed(\"cut short at byte 0\")"),
            (&[0x62, b'a'], "Malformed(\"cut short at byte 2\")"),
            (&[0x18, 0x05], "Unexpected(\"a number not in its shortest form at byte 0\")"),
            (&[0x9f, 0xff], "Unexpected(\"an indefinite length at byte 0\")"),
            (&[0x41, 0x00], "Unexpected(\"a byte string at byte 0\")"),
            (&[0xc1, 0x00], "Unexpected(\"the tag 1 at byte 0\")"),
            (&[0xf7], "Unexpected(\"the simple value 23 at byte 0\")"),
            (&[0xa1, 0x01, 0x02], "Unexpected(\"a map key that is not text at byte 1\")"),
            (
                &[0xa2, 0x61, b'a', 0x01, 0x61, b'a', 0x02],
                "Unexpected(\"the map key \\\"a\\\" twice\")",
            ),
            (&[0x61, 0xff], "Malformed(\"a text string that is not UTF-8 at byte 0\")"),
            (&[0x01, 0x02], "Unexpected(\"1 bytes after the item\")"),
            (&[0x1c], "Malformed(\"reserved additional information 28 at byte 0\")"),
            (
                &[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                "Malformed(\"cut short at byte 9\")",
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(format!("{:?}", decode(bytes).unwrap_err()), *expected, "{bytes:x?}");
        }
        let deep = [vec![0x81; 40], vec![0x00]].concat();
        assert_eq!(decode(&deep), Err(CborError::Unexpected("nesting deeper than 32".into())));
    }
}
