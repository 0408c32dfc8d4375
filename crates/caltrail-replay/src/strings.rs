//! Interned text for the rows that come by the million (one per `cal.issued`): a server, pack or
//! holder name is kept once and rows hold a 4-byte handle to it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A handle to a text held by `Strings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sym(u32);

/// The texts of one replay. Handles are given out in first-seen order and never reused.
#[derive(Debug, Default)]
pub struct Strings {
    index: HashMap<Box<str>, Sym, FastHash>,
    texts: Vec<Box<str>>,
}

impl Strings {
    /// The handle of `text`, adding it when it is new.
    pub fn intern(&mut self, text: &str) -> Sym {
        if let Some(sym) = self.index.get(text) {
            return *sym;
        }
        // More than 4 billion distinct texts would not fit in memory long before.
        let sym = Sym(u32::try_from(self.texts.len()).unwrap_or(u32::MAX));
        self.texts.push(text.into());
        self.index.insert(text.into(), sym);
        sym
    }

    /// The text of a handle this replay gave out.
    pub fn get(&self, sym: Sym) -> &str {
        self.texts.get(sym.0 as usize).map_or("", |text| text)
    }
}

/// The hasher of the replay's own maps: their keys are names from the ledger, looked up
/// several times per event, and need no protection against chosen collisions (the ledger's
/// content is the user's own). Multiply-rotate over 8-byte words, as rustc's FxHasher does.
pub type FastHash = BuildHasherDefault<WordHasher>;

#[derive(Default)]
pub struct WordHasher(u64);

impl WordHasher {
    const K: u64 = 0xf135_7aea_2e62_a9c5;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(26) ^ word).wrapping_mul(Self::K);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.add(u64::from_le_bytes(word.try_into().unwrap_or_default()));
        }
        let mut tail = [0u8; 8];
        tail[..words.remainder().len()].copy_from_slice(words.remainder());
        self.add(u64::from_le_bytes(tail));
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
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
}
