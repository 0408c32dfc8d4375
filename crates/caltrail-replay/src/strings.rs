//! Interned text for the rows that come by the million (one per `cal.issued`): a server, pack or
//! holder name is kept once and rows hold a 4-byte handle to it.

use std::hash::BuildHasher;

use caltrail_events::bytes::word_of;
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

/// How many of a text's first bytes the index keeps beside its handle.
const HEAD: usize = 20;

/// What the index keeps of a text: its handle, and enough of the text to tell it from others
/// and to find a short one without reading the text itself. A replay looks up a holder's name
/// for every CAL event, in no order the memory follows: reading the handle's text costs two
/// more cache misses than the slot (the list of texts, then the text), and for a name of up to
/// `HEAD` bytes (`PC-0026347`, `CONTOSO\jdoe`, `ESTATE\u0012345`) neither is needed. A slot
/// takes 32 bytes, two to a cache line.
#[derive(Debug, Clone, Copy)]
struct Slot {
    sym: Sym,
    /// The handle of the text in lower case, once asked for: `Strings::lower` for it.
    lower: Option<Sym>,
    head: Head,
}

/// A text's length and first `HEAD` bytes, zeros after its end, as little-endian words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    words: [u64; 2],
    tail: u32,
    len: u32,
}

/// The `Head` of `text`, worked out in registers from loads of fixed width. Copied into an
/// array, a length known only at run time was a call to `memcpy`, and built in memory a word
/// at a time, the comparison's wider load waited for the narrower stores (two lookups per CAL
/// event; both measured).
fn head_of(text: &str) -> Head {
    let b = text.as_bytes();
    let word = |from: usize, width: usize| {
        b.get(from..).map_or(0, |rest| word_of(&rest[..rest.len().min(width)]))
    };
    // `HEAD` is 20: two words and four bytes.
    Head {
        words: [word(0, 8), word(8, 8)],
        tail: u32::try_from(word(16, 4)).unwrap_or(0),
        len: u32::try_from(b.len()).unwrap_or(u32::MAX),
    }
}

/// A text as the index compares it.
struct Key<'t> {
    text: &'t str,
    head: Head,
}

impl<'t> Key<'t> {
    fn of(text: &'t str) -> Key<'t> {
        Key { text, head: head_of(text) }
    }

    fn slot(&self, sym: Sym) -> Slot {
        Slot { sym, lower: None, head: self.head }
    }

    /// Whether `slot` is this text's: the length and first bytes, then the rest of a longer
    /// text, read from `texts`.
    fn is(&self, slot: &Slot, texts: &[Box<str>]) -> bool {
        slot.head == self.head
            && (self.text.len() <= HEAD
                || texts.get(slot.sym.index()).is_some_and(|text| **text == *self.text))
    }
}

/// The texts of one replay. Handles are given out in first-seen order and never reused.
#[derive(Debug, Default)]
pub struct Strings {
    /// The handles, found by their texts' hashes: each text is held once, in `texts`.
    index: HashTable<Slot>,
    pub(crate) texts: Vec<Box<str>>,
    /// By handle: the handle of the text in lower case, once asked for.
    pub(crate) lower: Vec<Option<Sym>>,
}

fn hash_of(text: &str) -> u64 {
    FxBuildHasher.hash_one(text)
}

impl Strings {
    /// The texts given, in handle order, with the handle of each text's lower case where it
    /// was asked for: as a snapshot holds them. `None` when a text comes twice, which
    /// `intern` never makes.
    pub(crate) fn from_texts(texts: Vec<Box<str>>, lower: Vec<Option<Sym>>) -> Option<Strings> {
        let mut index = HashTable::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            let hash = hash_of(text);
            let key = Key::of(text);
            if index.find(hash, |slot| key.is(slot, &texts)).is_some() {
                return None;
            }
            let sym = Sym::from_index(u32::try_from(i).ok()?);
            let slot = Slot { lower: lower.get(i).copied().flatten(), ..key.slot(sym) };
            index.insert_unique(hash, slot, |slot| hash_of(&texts[slot.sym.index()]));
        }
        Some(Strings { index, texts, lower })
    }

    /// The handle of `text`, if it has one.
    pub fn find(&self, text: &str) -> Option<Sym> {
        self.find_known_lower(text).map(|(sym, _)| sym)
    }

    /// The handle of `text` and of its lower case, as `intern_known_lower` would give them,
    /// without adding anything.
    pub(crate) fn find_known_lower(&self, text: &str) -> Option<(Sym, Option<Sym>)> {
        let key = Key::of(text);
        let slot = self.index.find(hash_of(text), |slot| key.is(slot, &self.texts))?;
        Some((slot.sym, slot.lower))
    }

    /// The handle of `text`, adding it when it is new.
    pub fn intern(&mut self, text: &str) -> Sym {
        self.intern_slot(text).sym
    }

    /// The slot of `text`, added when it is new.
    fn intern_slot(&mut self, text: &str) -> Slot {
        let hash = hash_of(text);
        let key = Key::of(text);
        if let Some(slot) = self.index.find(hash, |slot| key.is(slot, &self.texts)) {
            return *slot;
        }
        // More than 4 billion distinct texts would not fit in memory long before.
        let sym = Sym::from_index(u32::try_from(self.texts.len()).unwrap_or(u32::MAX - 1));
        self.texts.push(text.into());
        self.lower.push(None);
        let texts = &self.texts;
        let slot = key.slot(sym);
        self.index.insert_unique(hash, slot, |slot| hash_of(&texts[slot.sym.index()]));
        slot
    }

    /// The handle of `text`, added when it is new, and the handle of its lower case when
    /// `lower_of_text` worked it out before: a text met again is one lookup.
    pub fn intern_known_lower(&mut self, text: &str) -> (Sym, Option<Sym>) {
        let slot = self.intern_slot(text);
        (slot.sym, slot.lower)
    }

    /// `lower(sym)`, `text` being the text of `sym`, kept beside the text in the index too
    /// (`intern_known_lower`).
    pub fn lower_of_text(&mut self, sym: Sym, text: &str) -> Sym {
        let lower = self.lower(sym);
        let key = Key::of(text);
        if let Some(slot) = self.index.find_mut(hash_of(text), |slot| key.is(slot, &self.texts)) {
            slot.lower = Some(lower);
        }
        lower
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

    /// The head is the text's first bytes and zeros, whatever its length.
    #[test]
    fn the_head_is_the_first_bytes_and_zeros() {
        let text = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let head_of_bytes = |bytes: &[u8]| {
            let mut padded = [0; 24];
            let k = bytes.len().min(HEAD);
            padded[..k].copy_from_slice(&bytes[..k]);
            let word = |at: usize| u64::from_le_bytes(padded[at..at + 8].try_into().unwrap());
            Head {
                words: [word(0), word(8)],
                tail: u32::try_from(word(16) & 0xffff_ffff).unwrap(),
                len: u32::try_from(bytes.len()).unwrap(),
            }
        };
        for n in 0..=text.len() {
            assert_eq!(head_of(&text[..n]), head_of_bytes(&text.as_bytes()[..n]), "{n}");
        }
        assert_eq!(head_of("é"), head_of_bytes(&[0xc3, 0xa9]));
        assert_eq!(head_of("é").words[0], 0xa9c3);
    }

    /// Texts that share their length and first bytes, or are longer than what the index
    /// keeps of them, are told apart; `intern_known_lower` and `lower_of_text` give what `intern`
    /// and `lower` give.
    #[test]
    fn texts_alike_in_their_first_bytes_are_told_apart() {
        let mut strings = Strings::default();
        let texts = [
            "",
            "a",
            "PC-0026347",
            "PC-0026348",
            "CONTOSO\\jdoe",
            "CONTOSO\\jdoe2",
            "CONTOSO\\jdoF",
            "ls003.estate.example",
            "ls003.estate.exampld",
            "ls003.estate.examplee",
            "ls003.estate.exampl",
            "ls003.estate.example.com",
            "ls003.estate.example.org",
            "ÉTÉ-ÉTÉ-ÉTÉ",
            "été-été-été",
        ];
        let syms: Vec<Sym> = texts.iter().map(|t| strings.intern(t)).collect();
        for (i, text) in texts.iter().enumerate() {
            assert_eq!(strings.intern(text), syms[i], "{text}");
            assert_eq!(strings.find(text), Some(syms[i]), "{text}");
            assert_eq!(strings.get(syms[i]), *text);
        }
        assert_eq!(strings.texts.len(), texts.len());
        assert_eq!(strings.find("PC-0026349"), None);
        assert_eq!(strings.find("ls003.estate.examplf"), None);
        assert_eq!(strings.find("ls003.estate.example.net"), None);
        assert_eq!(std::mem::size_of::<Slot>(), 32);
        for text in texts {
            let sym = strings.intern(text);
            assert_eq!(strings.intern_known_lower(text), (sym, None), "{text}");
            let lower = strings.lower_of_text(sym, text);
            assert_eq!(lower, strings.lower(sym), "{text}");
            assert_eq!(strings.intern_known_lower(text), (sym, Some(lower)), "{text}");
        }
        let (ete, lower) = strings.intern_known_lower("ÉTÉ-ÉTÉ-ÉTÉ");
        assert_eq!(
            (strings.get(lower.unwrap()), lower),
            ("été-été-été", strings.find("été-été-été"))
        );
        assert_ne!(Some(ete), lower);
        let mut copy = Strings::from_texts(strings.texts.clone(), strings.lower.clone()).unwrap();
        for text in texts {
            assert_eq!(copy.intern_known_lower(text), strings.intern_known_lower(text), "{text}");
        }
        assert_eq!(copy.texts, strings.texts);
        assert!(Strings::from_texts(vec!["x".into(), "x".into()], vec![None, None]).is_none());
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
