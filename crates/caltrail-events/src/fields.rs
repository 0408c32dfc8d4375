//! Reading the fields of an object with errors that name the field's path. Knows nothing of which
//! fields an event has; `event` says that.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use crate::value::Value;

/// A value that is not what the contract allows, with the dotted path of the field
/// (`data.quantity`). An empty path means the whole line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field, as a JSON path (`data.quantity`).
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for FieldError {}

/// Joins an object path and a field name: `""` + `id` is `id`, `data` + `server` is `data.server`.
pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_owned() } else { format!("{prefix}.{name}") }
}

/// The fields of one object. Unknown fields are refused when it is opened, before any field is
/// read, so that a misspelt optional field is reported as what it is and not as a missing one.
pub(crate) struct Object<'a> {
    /// The path of the object that holds this one, or this one's own path at the top...
    parent: Cow<'a, str>,
    /// ...and, for an object that is a field of another, its name there. The two are joined
    /// only for an error: decoding a stored entry opens its `data` for every entry.
    name: Option<&'a str>,
    fields: Fields<'a>,
    /// Where the next lookup starts: after the field found last. Stored entries hold their
    /// fields in contract order and the validator reads them in that order, so a lookup
    /// usually compares one name, where a scan from the first field compared half of them.
    next: Cell<usize>,
}

/// The most fields an object read by `Object::of_slots` may allow.
pub(crate) const MAX_SLOTS: usize = 16;

/// Where an object's fields are.
enum Fields<'a> {
    /// As a value tree holds them, in any order.
    Tree(&'a [(Cow<'a, str>, Value<'a>)]),
    /// One place per name the object allows, in that order, with the field's value or nothing:
    /// a lookup finds the name among those allowed, and a field left out costs no more to
    /// look up than one given.
    Slots { allowed: &'static [&'static str], values: &'a [Option<Value<'a>>; MAX_SLOTS] },
}

/// The index of `name` in `names`, searched from `from` on and then from the first: the same
/// answer as a search from the first (names are distinct), found sooner when the names are
/// met in order.
fn find_from<T>(names: &[T], from: usize, is: impl Fn(&T) -> bool) -> Option<usize> {
    let from = from.min(names.len());
    names[from..]
        .iter()
        .position(&is)
        .map(|at| from + at)
        .or_else(|| names[..from].iter().position(&is))
}

impl<'a> Object<'a> {
    /// Opens `value` as the object at `path` ("" for a whole line).
    pub(crate) fn open(
        value: &'a Value<'a>,
        path: &'a str,
        allowed: &[&str],
    ) -> Result<Object<'a>, FieldError> {
        Object::open_at(value, Cow::Borrowed(path), None, allowed)
    }

    /// The object `name` inside the object at `parent`, whose fields the caller read itself:
    /// `values[i]` is the field named `allowed[i]`, if given (`Event::from_canonical`).
    pub(crate) fn of_slots(
        allowed: &'static [&'static str],
        values: &'a [Option<Value<'a>>; MAX_SLOTS],
        parent: &'a str,
        name: &'a str,
    ) -> Object<'a> {
        Object {
            parent: Cow::Borrowed(parent),
            name: Some(name),
            fields: Fields::Slots { allowed, values },
            next: Cell::new(0),
        }
    }

    /// Opens the required field `name` of this object as an object.
    pub(crate) fn open_field(
        &self,
        name: &'a str,
        allowed: &[&str],
    ) -> Result<Object<'a>, FieldError> {
        Object::open_at(self.required(name)?, self.whole_path(), Some(name), allowed)
    }

    fn open_at(
        value: &'a Value<'a>,
        parent: Cow<'a, str>,
        name: Option<&'a str>,
        allowed: &[&str],
    ) -> Result<Object<'a>, FieldError> {
        let Value::Object(fields) = value else {
            let path = name.map_or_else(|| parent.to_string(), |name| join(&parent, name));
            let what = if path.is_empty() { "the line" } else { &path };
            return Err(FieldError::new(
                "",
                format!("{what} must be a JSON object, got {}", value.kind()),
            ));
        };
        let object = Object { parent, name, fields: Fields::Tree(fields), next: Cell::new(0) };
        let mut next_allowed = 0;
        for (name, _) in fields {
            let Some(at) = find_from(allowed, next_allowed, |a| *a == name.as_ref()) else {
                return Err(FieldError::new(
                    object.path(name),
                    format!("unknown field (expected one of: {})", allowed.join(", ")),
                ));
            };
            next_allowed = at + 1;
        }
        Ok(object)
    }

    /// This object's own path.
    fn whole_path(&self) -> Cow<'a, str> {
        match self.name {
            None => self.parent.clone(),
            Some(name) => Cow::Owned(join(&self.parent, name)),
        }
    }

    pub(crate) fn path(&self, name: &str) -> String {
        join(&self.whole_path(), name)
    }

    /// A field that must be present and not null.
    pub(crate) fn required(&self, name: &str) -> Result<&'a Value<'a>, FieldError> {
        match self.optional(name) {
            Some(value) => Ok(value),
            None => Err(FieldError::new(self.path(name), "is required")),
        }
    }

    /// A field that may be absent. `null` means absent: JSON writers often emit it for a field
    /// they have no value for, and both spellings mean the same.
    pub(crate) fn optional(&self, name: &str) -> Option<&'a Value<'a>> {
        let value = match self.fields {
            Fields::Tree(fields) => {
                let at = find_from(fields, self.next.get(), |(k, _)| k == name)?;
                self.next.set(at + 1);
                &fields[at].1
            }
            Fields::Slots { allowed, values } => {
                // The validator asks for names the event code spells as the same literals
                // `EventType::fields` lists: where the compiler made them one, the address
                // says so without comparing the bytes.
                let at = find_from(allowed, self.next.get(), |a| {
                    std::ptr::eq(*a, name) || crate::bytes::same(a.as_bytes(), name.as_bytes())
                })?;
                self.next.set(at + 1);
                values.get(at)?.as_ref()?
            }
        };
        Some(value).filter(|v| !matches!(v, Value::Null))
    }

    pub(crate) fn text(&self, name: &str) -> Result<&'a str, FieldError> {
        as_text(self.required(name)?, || self.path(name))
    }

    pub(crate) fn optional_text(&self, name: &str) -> Result<Option<&'a str>, FieldError> {
        self.optional(name).map(|v| as_text(v, || self.path(name))).transpose()
    }

    pub(crate) fn boolean(&self, name: &str) -> Result<bool, FieldError> {
        as_bool(self.required(name)?, || self.path(name))
    }

    pub(crate) fn optional_boolean(&self, name: &str) -> Result<Option<bool>, FieldError> {
        self.optional(name).map(|v| as_bool(v, || self.path(name))).transpose()
    }

    pub(crate) fn integer(&self, name: &str) -> Result<i128, FieldError> {
        as_integer(self.required(name)?, || self.path(name))
    }

    pub(crate) fn optional_integer(&self, name: &str) -> Result<Option<i128>, FieldError> {
        self.optional(name).map(|v| as_integer(v, || self.path(name))).transpose()
    }

    /// Parses a required field with `parse`, which gets the field's text.
    pub(crate) fn parsed<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, FieldError> {
        let text = self.text(name)?;
        parse(text).map_err(|message| FieldError::new(self.path(name), message))
    }

    pub(crate) fn optional_parsed<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, FieldError> {
        match self.optional_text(name)? {
            Some(text) => {
                parse(text).map(Some).map_err(|message| FieldError::new(self.path(name), message))
            }
            None => Ok(None),
        }
    }
}

// The path is built only for an error: decoding every stored entry calls these for every field.
fn as_text<'a>(value: &'a Value<'_>, path: impl FnOnce() -> String) -> Result<&'a str, FieldError> {
    match value {
        Value::Text(s) => Ok(s),
        other => Err(FieldError::new(path(), format!("must be a string, got {}", other.kind()))),
    }
}

fn as_bool(value: &Value, path: impl FnOnce() -> String) -> Result<bool, FieldError> {
    match value {
        Value::Bool(b) => Ok(*b),
        other => {
            Err(FieldError::new(path(), format!("must be true or false, got {}", other.kind())))
        }
    }
}

fn as_integer(value: &Value, path: impl FnOnce() -> String) -> Result<i128, FieldError> {
    match value {
        Value::Integer(i) => Ok(*i),
        Value::Float(f) => Err(FieldError::new(path(), format!("must be a whole number, got {f}"))),
        other => Err(FieldError::new(path(), format!("must be a number, got {}", other.kind()))),
    }
}

/// An object being written in canonical form: fields in the order the code adds them, absent
/// optional fields left out. Text is borrowed from the event where it can be. It is built as a
/// value tree, or written straight out as compact JSON (`json`), exactly as the tree's
/// `write_json` would write it: an export writes one per event, and the tree was built only to
/// be walked once and dropped.
pub(crate) struct ObjectWriter<'a, 'o> {
    to: Written<'a, 'o>,
}

enum Written<'a, 'o> {
    Tree(Vec<(Cow<'a, str>, Value<'a>)>),
    /// The JSON text so far and the number of fields in it.
    Json(&'o mut Vec<u8>, usize),
}

impl<'a, 'o> ObjectWriter<'a, 'o> {
    /// A writer building a value tree, which `finish` returns.
    pub(crate) fn tree() -> ObjectWriter<'a, 'o> {
        ObjectWriter { to: Written::Tree(Vec::new()) }
    }

    /// A writer appending the object's JSON text to `out`; `finish` closes it.
    pub(crate) fn json(out: &'o mut Vec<u8>) -> ObjectWriter<'a, 'o> {
        ObjectWriter { to: Written::Json(out, 0) }
    }

    fn push(&mut self, name: &'static str, value: Value<'a>) -> &mut Self {
        match &mut self.to {
            Written::Tree(fields) => fields.push((Cow::Borrowed(name), value)),
            Written::Json(out, n) => {
                out.push(if *n == 0 { b'{' } else { b',' });
                crate::value::write_json_string(out, name);
                out.push(b':');
                value.write_json(out);
                *n += 1;
            }
        }
        self
    }
    pub(crate) fn text(&mut self, name: &'static str, value: impl Into<Cow<'a, str>>) -> &mut Self {
        self.push(name, Value::Text(value.into()))
    }
    pub(crate) fn optional_text(
        &mut self,
        name: &'static str,
        value: Option<impl Into<Cow<'a, str>>>,
    ) -> &mut Self {
        if let Some(value) = value {
            self.text(name, value);
        }
        self
    }
    pub(crate) fn integer(&mut self, name: &'static str, value: impl Into<i128>) -> &mut Self {
        self.push(name, Value::Integer(value.into()))
    }
    pub(crate) fn optional_integer(
        &mut self,
        name: &'static str,
        value: Option<impl Into<i128>>,
    ) -> &mut Self {
        if let Some(value) = value {
            self.integer(name, value);
        }
        self
    }
    pub(crate) fn boolean(&mut self, name: &'static str, value: bool) -> &mut Self {
        self.push(name, Value::Bool(value))
    }
    pub(crate) fn optional_boolean(
        &mut self,
        name: &'static str,
        value: Option<bool>,
    ) -> &mut Self {
        if let Some(value) = value {
            self.boolean(name, value);
        }
        self
    }
    pub(crate) fn value(&mut self, name: &'static str, value: Value<'a>) -> &mut Self {
        self.push(name, value)
    }
    /// The tree built, or `Value::Null` once the JSON text is closed.
    pub(crate) fn finish(&mut self) -> Value<'a> {
        match &mut self.to {
            Written::Tree(fields) => Value::Object(std::mem::take(fields)),
            Written::Json(out, n) => {
                if *n == 0 {
                    out.push(b'{');
                }
                out.push(b'}');
                Value::Null
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wherever the search starts, it finds what a search from the first name finds.
    #[test]
    fn a_search_from_a_later_place_finds_what_one_from_the_first_finds() {
        let names = ["id", "type", "at", "actor", "note", "data"];
        for from in 0..=names.len() + 1 {
            for wanted in names.iter().chain(&["server", ""]) {
                assert_eq!(
                    find_from(&names, from, |n| n == wanted),
                    names.iter().position(|n| n == wanted),
                    "{wanted:?} from {from}"
                );
            }
        }
    }
}
