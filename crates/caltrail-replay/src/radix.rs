//! Sorting the millions of moments the licence counts step at: a radix sort of `i64`, the
//! same order as `sort_unstable` in a few passes over the keys instead of a comparison sort.

/// Bits of the key each pass sorts by: 2,048 counts, which stay in the core's first cache.
const DIGIT_BITS: u32 = 11;
const DIGITS: usize = 1 << DIGIT_BITS;
/// Passes to cover 64 bits.
const PASSES: usize = 64usize.div_ceil(DIGIT_BITS as usize);
/// Below this many keys a comparison sort is as fast.
const SMALL: usize = 1 << 12;

/// Sorts `keys` ascending, as `keys.sort_unstable()` would. `scratch` is room the sort may use,
/// kept by the caller for the next sort.
pub(crate) fn sort_i64(keys: &mut Vec<i64>, scratch: &mut Vec<i64>) {
    if keys.len() < SMALL {
        keys.sort_unstable();
        return;
    }
    // The sign bit flipped: the keys' order as unsigned numbers is their order as signed ones.
    let unsigned = |key: i64| key.cast_unsigned() ^ (1 << 63);
    let digit = |key: i64, pass: usize| {
        ((unsigned(key) >> (pass as u32 * DIGIT_BITS)) as usize) & (DIGITS - 1)
    };
    let mut counts = vec![[0usize; DIGITS]; PASSES];
    for &key in keys.iter() {
        for (pass, counts) in counts.iter_mut().enumerate() {
            counts[digit(key, pass)] += 1;
        }
    }
    scratch.clear();
    scratch.resize(keys.len(), 0);
    for (pass, counts) in counts.iter_mut().enumerate() {
        // A digit every key shares leaves the order as it is: times share their high bits.
        if counts.contains(&keys.len()) {
            continue;
        }
        let mut next = 0;
        for count in counts.iter_mut() {
            let n = *count;
            *count = next;
            next += n;
        }
        for &key in keys.iter() {
            let slot = &mut counts[digit(key, pass)];
            scratch[*slot] = key;
            *slot += 1;
        }
        std::mem::swap(keys, scratch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order of `sort_unstable`, on keys of every sign and size, on times a few years
    /// apart (the high digits shared), on many equal keys, and on lengths about the threshold.
    #[test]
    fn sorts_as_sort_unstable_does() {
        // A 64-bit linear congruential generator (Knuth's MMIX constants): repeatable keys.
        let mut state = 7u64;
        let mut next_u64 = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            state
        };
        let mut scratch = Vec::new();
        let cases: [Vec<i64>; 7] = [
            (0..50_000).map(|_| next_u64().cast_signed()).collect(),
            (0..50_000)
                .map(|_| 1_700_000_000_000_000 + (next_u64() % 200_000_000_000_000) as i64)
                .collect(),
            (0..20_000).map(|_| (next_u64() % 5) as i64 - 2).collect(),
            (0..SMALL - 1).map(|i| (i as i64 * 7_919) % 1_013 - 500).collect(),
            (0..SMALL).map(|i| -(i as i64)).collect(),
            [i64::MIN, i64::MAX, 0, -1, 1].repeat(SMALL),
            vec![42; SMALL * 2],
        ];
        for keys in cases {
            let mut expected = keys.clone();
            expected.sort_unstable();
            let mut sorted = keys;
            sort_i64(&mut sorted, &mut scratch);
            assert_eq!(sorted, expected);
        }
    }
}
