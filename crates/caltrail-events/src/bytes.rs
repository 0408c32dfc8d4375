//! Short byte strings read and compared a word at a time: field names and the first bytes of
//! names, met for every stored entry. Comparing slices calls `memcmp`, and copying a length
//! known only at run time calls `memcpy`; for a few bytes the call costs more than the work.

/// Up to 8 bytes as a little-endian word, zeros after their end; of more, the first 8. Read
/// with loads of fixed width, overlapping where the length is not one.
#[inline]
pub fn word_of(b: &[u8]) -> u64 {
    let n = b.len();
    match n {
        8.. => b.first_chunk::<8>().map_or(0, |w| u64::from_le_bytes(*w)),
        4..=7 => {
            let low = b.first_chunk::<4>().map_or(0, |w| u32::from_le_bytes(*w));
            let high = b.last_chunk::<4>().map_or(0, |w| u32::from_le_bytes(*w));
            // The two overlap in equal bytes, so or-ing them gives the bytes.
            u64::from(low) | u64::from(high) << (8 * (n - 4))
        }
        1..=3 => {
            u64::from(b[0])
                | u64::from(b[n / 2]) << (8 * (n / 2))
                | u64::from(b[n - 1]) << (8 * (n - 1))
        }
        0 => 0,
    }
}

/// Whether `a` and `b` are the same bytes: up to 16 bytes as their first and last words
/// (overlapping), longer ones as slices.
#[inline]
pub fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    n == b.len()
        && match n {
            0..=8 => word_of(a) == word_of(b),
            9..=16 => word_of(a) == word_of(b) && word_of(&a[n - 8..]) == word_of(&b[n - 8..]),
            _ => a == b,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn padded_word(b: &[u8]) -> u64 {
        let mut padded = [0; 8];
        let n = b.len().min(8);
        padded[..n].copy_from_slice(&b[..n]);
        u64::from_le_bytes(padded)
    }

    #[test]
    fn a_word_is_the_first_bytes_and_zeros() {
        let text = b"ABCDEFGHIJK";
        for n in 0..=text.len() {
            assert_eq!(word_of(&text[..n]), padded_word(&text[..n]), "{n}");
        }
        assert_eq!(word_of(b"id"), 0x6469);
    }

    #[test]
    fn bytes_differing_in_any_one_place_or_length_differ() {
        let text = b"session_host_version and more";
        for n in 0..=text.len() {
            let a = &text[..n];
            assert!(same(a, a), "{n}");
            for i in 0..n {
                let mut b = a.to_vec();
                b[i] ^= 0x20;
                assert!(!same(a, &b), "{n} at {i}");
            }
            if n > 0 {
                assert!(!same(a, &text[..n - 1]), "{n}");
                assert_eq!(same(&a[1..], &text[..n - 1]), a[1..] == text[..n - 1], "{n}");
            }
        }
    }

    proptest! {
        #[test]
        fn same_is_equality(a in proptest::collection::vec(0u8..4, 0..24),
                            b in proptest::collection::vec(0u8..4, 0..24)) {
            prop_assert_eq!(same(&a, &b), a == b);
            prop_assert_eq!(word_of(&a), padded_word(&a));
        }
    }
}
