//! Interned text for the rows that come by the million (one per `cal.issued`): a server, pack or
//! holder name is kept once and rows hold a 4-byte handle to it.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// A handle to a text held by `Strings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sym(std::num::NonZeroU32);

impl Sym {
    /// The handle of the `index`th text. Stored as `index + 1`, so that an `Option<Sym>` takes
    /// four bytes: the issues table holds two per row, ten million rows in a large ledger.
    pub(crate) fn from_index(index: u32) -> Sym {
        Sym(std::num::NonZeroU32::MIN.saturating_add(index))
    }

    /// The handle as a number, in the handles' order.
    pub fn raw(self) -> u32 {
        self.0.get()
    }

    /// Which text, from 0.
    pub(crate) fn index(self) -> usize {
        (self.0.get() - 1) as usize
    }

    /// A handle made up for a test, naming no text.
    #[cfg(test)]
    pub(crate) fn for_tests(n: u32) -> Sym {
        Sym::from_index(n)
    }
}

/// The texts of one replay. Handles are given out in first-seen order and never reused.
#[derive(Debug, Default)]
pub struct Strings {
    /// The handles, found by their texts' hashes: each text is held once, in `texts`.
    index: HashTable<Sym>,
    pub(crate) texts: Vec<Box<str>>,
    /// By handle: the handle of the text in lower case, once asked for.
    pub(crate) lower: Vec<Option<Sym>>,
}

impl Strings {
    /// The texts given, in handle order, with the handle of each text's lower case where it
    /// was asked for: as a snapshot holds them. `None` when a text comes twice, which
    /// `intern` never makes.
    pub(crate) fn from_texts(texts: Vec<Box<str>>, lower: Vec<Option<Sym>>) -> Option<Strings> {
        let mut index = HashTable::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            let hash = FxBuildHasher.hash_one(&**text);
            if index.find(hash, |sym: &Sym| *texts[sym.index()] == **text).is_some() {
                return None;
            }
            let sym = Sym::from_index(u32::try_from(i).ok()?);
            index.insert_unique(hash, sym, |sym| FxBuildHasher.hash_one(&*texts[sym.index()]));
        }
        Some(Strings { index, texts, lower })
    }

    /// The handle of `text`, if it has one.
    pub fn find(&self, text: &str) -> Option<Sym> {
        let hash = FxBuildHasher.hash_one(text);
        self.index.find(hash, |sym| *self.texts[sym.index()] == *text).copied()
    }

    /// The handle of `text`, adding it when it is new.
    pub fn intern(&mut self, text: &str) -> Sym {
        let hash = FxBuildHasher.hash_one(text);
        let texts = &self.texts;
        if let Some(sym) = self.index.find(hash, |sym| *texts[sym.index()] == *text) {
            return *sym;
        }
        // More than 4 billion distinct texts would not fit in memory long before.
        let sym = Sym::from_index(u32::try_from(self.texts.len()).unwrap_or(u32::MAX - 1));
        self.texts.push(text.into());
        self.lower.push(None);
        let texts = &self.texts;
        self.index.insert_unique(hash, sym, |sym| FxBuildHasher.hash_one(&*texts[sym.index()]));
        sym
    }

    /// The handle of a text in lower case, worked out once per text: holder names are compared
    /// without case, for every CAL event.
    pub fn lower(&mut self, sym: Sym) -> Sym {
        if let Some(Some(lower)) = self.lower.get(sym.index()) {
            return *lower;
        }
        let text = self.get(sym);
        let lower = if text.bytes().any(|b| b.is_ascii_uppercase()) || !text.is_ascii() {
            let lowered = text.to_lowercase();
            self.intern(&lowered)
        } else {
            sym
        };
        if let Some(slot) = self.lower.get_mut(sym.index()) {
            *slot = Some(lower);
        }
        lower
    }

    /// The text of a handle this replay gave out.
    pub fn get(&self, sym: Sym) -> &str {
        self.texts.get(sym.index()).map_or("", |text| text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_text_gets_the_same_handle() {
        let mut strings = Strings::default();
        let a = strings.intern("ls01");
        let b = strings.intern("ls02");
        assert_eq!(strings.intern("ls01"), a);
        assert_ne!(a, b);
        assert_eq!((strings.get(a), strings.get(b)), ("ls01", "ls02"));
    }

    #[test]
    fn lower_case_is_its_own_text() {
        let mut strings = Strings::default();
        let ann = strings.intern("CONTOSO\\Ann");
        let lower = strings.lower(ann);
        assert_eq!(strings.get(lower), "contoso\\ann");
        assert_eq!(strings.lower(lower), lower);
        let already = strings.intern("contoso\\ann");
        assert_eq!(strings.lower(already), lower);
        let sigma = strings.intern("ΣΟΦΙΑ");
        let sigma_lower = strings.lower(sigma);
        assert_eq!(strings.get(sigma_lower), "ΣΟΦΙΑ".to_lowercase());
    }
}
