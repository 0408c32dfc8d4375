//! A JSON-like value tree shared by JSON input and stored CBOR, so that both pass through one
//! validator. It does not know what an event is.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A parsed JSON or CBOR value. Objects keep their keys in order and never hold a key twice.
/// Text borrows from the input where it can (CBOR always, JSON when a string has no escapes):
/// reading a stored entry then allocates only what the event keeps.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// JSON null.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Integer(i128),
    /// Never valid in an event; kept so the validator can say what it got.
    Float(f64),
    /// A text string.
    Text(Cow<'a, str>),
    /// An array.
    Array(Vec<Value<'a>>),
    /// An object, its keys in the order given.
    Object(Vec<(Cow<'a, str>, Value<'a>)>),
}

impl<'a> Value<'a> {
    /// A short description of the value's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a fractional number",
            Value::Text(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }

    /// Parses one JSON document, refusing an object that names a key twice: with a duplicate key
    /// one of the two values would be dropped without anyone noticing.
    pub fn from_json(text: &'a str) -> Result<Value<'a>, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let value = Value::deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(value)
    }

    /// The value as `serde_json`'s tree, for printing.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Integer(i) => match i64::try_from(*i) {
                Ok(small) => serde_json::Value::from(small),
                Err(_) => match u64::try_from(*i) {
                    Ok(unsigned) => serde_json::Value::from(unsigned),
                    Err(_) => serde_json::Value::String(i.to_string()),
                },
            },
            Value::Float(f) => serde_json::Value::from(*f),
            Value::Text(s) => serde_json::Value::String(s.to_string()),
            Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect())
            }
            Value::Object(fields) => serde_json::Value::Object(
                fields.iter().map(|(k, v)| (k.to_string(), v.to_json())).collect(),
            ),
        }
    }

    /// Appends the value's compact JSON text to `out`, exactly as `to_json().to_string()` writes
    /// it, without building that tree first: the `events` table holds one per event.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        // Floats go through serde_json, so their digits are its own.
        fn serde(out: &mut Vec<u8>, value: &impl serde::Serialize) {
            serde_json::to_writer(out, value).expect("invariant: writing to memory cannot fail");
        }
        match self {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Integer(i) => {
                let fits = i64::try_from(*i).is_ok() || u64::try_from(*i).is_ok();
                let written = if fits { write!(out, "{i}") } else { write!(out, "\"{i}\"") };
                written.expect("invariant: writing to memory cannot fail");
            }
            Value::Float(f) => serde(out, f),
            Value::Text(text) => write_json_string(out, text),
            Value::Array(items) => {
                out.push(b'[');
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    item.write_json(out);
                }
                out.push(b']');
            }
            Value::Object(fields) => {
                out.push(b'{');
                for (n, (key, item)) in fields.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    write_json_string(out, key);
                    out.push(b':');
                    item.write_json(out);
                }
                out.push(b'}');
            }
        }
    }

    /// Converts a decoded CBOR item. CBOR that has no JSON meaning (byte strings, tags, non-text
    /// keys, duplicate keys) is refused: the ledger never writes it.
    pub fn from_cbor(value: ciborium::Value) -> Result<Value<'static>, String> {
        Ok(match value {
            ciborium::Value::Null => Value::Null,
            ciborium::Value::Bool(b) => Value::Bool(b),
            ciborium::Value::Integer(i) => Value::Integer(i128::from(i)),
            ciborium::Value::Float(f) => Value::Float(f),
            ciborium::Value::Text(s) => Value::Text(Cow::Owned(s)),
            ciborium::Value::Array(items) => {
                Value::Array(items.into_iter().map(Value::from_cbor).collect::<Result<_, _>>()?)
            }
            ciborium::Value::Map(entries) => {
                let mut fields: Vec<(Cow<'static, str>, Value)> = Vec::with_capacity(entries.len());
                for (key, value) in entries {
                    let ciborium::Value::Text(key) = key else {
                        return Err("a map key that is not text".to_owned());
                    };
                    if fields.iter().any(|(k, _)| *k == key) {
                        return Err(format!("the map key {key:?} twice"));
                    }
                    fields.push((Cow::Owned(key), Value::from_cbor(value)?));
                }
                Value::Object(fields)
            }
            ciborium::Value::Bytes(_) => return Err("a byte string".to_owned()),
            ciborium::Value::Tag(tag, _) => return Err(format!("the tag {tag}")),
            _ => return Err("an unknown CBOR item".to_owned()),
        })
    }

    /// The CBOR item for this value. Floats are never part of an event and have no canonical
    /// form here, so a float is a bug of the caller.
    pub fn to_cbor(&self) -> ciborium::Value {
        match self {
            Value::Null => ciborium::Value::Null,
            Value::Bool(b) => ciborium::Value::Bool(*b),
            Value::Integer(i) => {
                let integer = ciborium::value::Integer::try_from(*i)
                    .expect("invariant: the validator only admits integers that fit CBOR");
                ciborium::Value::Integer(integer)
            }
            Value::Float(f) => ciborium::Value::Float(*f),
            Value::Text(s) => ciborium::Value::Text(s.to_string()),
            Value::Array(items) => {
                ciborium::Value::Array(items.iter().map(Value::to_cbor).collect())
            }
            Value::Object(fields) => ciborium::Value::Map(
                fields
                    .iter()
                    .map(|(k, v)| (ciborium::Value::Text(k.to_string()), v.to_cbor()))
                    .collect(),
            ),
        }
    }
}

/// Appends `text` as a JSON string, escaped exactly as serde_json escapes it: `"` and `\\`,
/// the five short forms of control characters, `\u00xx` for the other control characters, and
/// nothing else. Written here because a run of text without escapes is copied whole, where
/// serde_json's formatter went through a table per byte for every event exported.
pub(crate) fn write_json_string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = text.as_bytes();
    // Most texts need no escape at all: eight bytes at a time, looking for a control
    // character, `"` or `\\` (each test is exact: nonzero if and only if a byte matches).
    let needs_escape = |word: u64| {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
        ((word.wrapping_sub(ONES * 0x20) & !word & HIGH)
            | zero_in(word ^ (ONES * u64::from(b'"')))
            | zero_in(word ^ (ONES * u64::from(b'\\'))))
            != 0
    };
    let mut clean = 0;
    let mut words = bytes.chunks_exact(8);
    let mut escape_seen = false;
    for chunk in &mut words {
        if needs_escape(u64::from_le_bytes(chunk.try_into().expect("eight bytes"))) {
            escape_seen = true;
            break;
        }
        clean += 8;
    }
    if !escape_seen {
        // The last bytes too, as a word padded with spaces: most texts of an event (keys,
        // names, times) are shorter than eight bytes or end in a part word, and a text
        // without an escape is then copied whole. The word comes from loads of fixed width
        // (`word_of`): copied into a stack array and read back whole, it waited on the copy's
        // stores (half of this function's time in an export's profile).
        let rest = words.remainder();
        let spaces = (u64::from_le_bytes([b' '; 8])) << (8 * rest.len());
        if !needs_escape(crate::bytes::word_of(rest) | spaces) {
            out.extend_from_slice(bytes);
            out.push(b'"');
            return;
        }
    }
    let mut copied = 0;
    for (at, &byte) in bytes.iter().enumerate().skip(clean) {
        let short = match byte {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x0c => b'f',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x00..=0x1f => b'u',
            _ => continue,
        };
        out.extend_from_slice(&bytes[copied..at]);
        copied = at + 1;
        out.push(b'\\');
        out.push(short);
        if short == b'u' {
            out.extend_from_slice(&[
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0x0f)],
            ]);
        }
    }
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
}

impl<'de> Deserialize<'de> for Value<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value<'de>, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value<'de>, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value<'de>, E> {
        Ok(Value::Integer(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value<'de>, E> {
        Ok(Value::Integer(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value<'de>, E> {
        Ok(Value::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Value<'de>, E> {
        Ok(Value::Text(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value<'de>, E> {
        Ok(Value::Text(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Value<'de>, E> {
        Ok(Value::Text(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value<'de>, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value<'de>, A::Error> {
        let mut fields: Vec<(Cow<'de, str>, Value<'de>)> = Vec::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if fields.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let value = map.next_value()?;
            fields.push((key, value));
        }
        Ok(Value::Object(fields))
    }
}

/// An object key, borrowed from the input when it has no escapes (serde's own `Cow<str>`
/// always copies).
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key<'de>, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused() {
        let err = Value::from_json(r#"{"a": 1, "a": 2}"#).unwrap_err();
        assert_eq!(err.to_string(), "duplicate key \"a\" at line 1 column 12");
    }

    #[test]
    fn keys_keep_their_order() {
        let value = Value::from_json(r#"{"b": 1, "a": [true, null, "x"]}"#).unwrap();
        assert_eq!(
            value,
            Value::Object(vec![
                ("b".into(), Value::Integer(1)),
                (
                    "a".into(),
                    Value::Array(vec![Value::Bool(true), Value::Null, Value::Text("x".into())])
                ),
            ])
        );
    }

    fn json_text(value: &Value<'_>) -> String {
        let mut out = Vec::new();
        value.write_json(&mut out);
        String::from_utf8(out).unwrap()
    }

    fn value() -> impl proptest::strategy::Strategy<Value = Value<'static>> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i128>().prop_map(Value::Integer),
            (-1i128 << 64..1i128 << 64).prop_map(Value::Integer),
            any::<f64>().prop_map(Value::Float),
            any::<String>().prop_map(|s| Value::Text(s.into())),
            "[\\x00-\\x1f\"\\\\\u{7f}\u{2028}é😀a]{0,6}".prop_map(|s| Value::Text(s.into())),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                // Keys are distinct in a valid value: the tree `to_json` builds would merge them.
                prop::collection::btree_map(any::<String>(), inner, 0..6).prop_map(|fields| {
                    Value::Object(fields.into_iter().map(|(k, v)| (k.into(), v)).collect())
                }),
            ]
        })
    }

    proptest::proptest! {
        /// The text written directly is the text of the tree `to_json` builds, byte for byte.
        #[test]
        fn json_text_is_that_of_the_json_tree(value in value()) {
            proptest::prop_assert_eq!(json_text(&value), value.to_json().to_string());
        }
    }

    /// Every ASCII character, alone and between others, is escaped as serde_json escapes it.
    #[test]
    fn json_strings_are_escaped_as_serde_json_escapes_them() {
        for byte in 0u8..0x80 {
            let c = char::from(byte);
            let mut texts =
                vec![c.to_string(), format!("a{c}"), format!("{c}é"), format!("x{c}{c}😀y")];
            // At every place of a text longer than the eight bytes read at a time.
            let long = "abcdefghijklmnopqrstuvwxyzé01234";
            for at in (0..=long.len()).filter(|at| long.is_char_boundary(*at)) {
                texts.push(format!("{}{c}{}", &long[..at], &long[at..]));
            }
            for text in texts {
                let mut out = Vec::new();
                write_json_string(&mut out, &text);
                assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&text).unwrap());
            }
        }
    }

    #[test]
    fn json_text_of_an_event_value() {
        let Value::Object(mut fields) =
            Value::from_json(r#"{"b": 1, "a": [true, null, "x\"\n\u0001é"], "f": 2.5}"#).unwrap()
        else {
            panic!("an object");
        };
        fields.push(("n".into(), Value::Integer(i128::MIN)));
        assert_eq!(
            json_text(&Value::Object(fields)),
            r#"{"b":1,"a":[true,null,"x\"\n\u0001é"],"f":2.5,"n":"-170141183460469231731687303715884105728"}"#
        );
    }

    #[test]
    fn trailing_text_is_refused() {
        assert!(Value::from_json(r#"{"a": 1} x"#).is_err());
    }
}
