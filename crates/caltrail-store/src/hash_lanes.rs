//! Many independent chain hashes at once: `verify` re-hashes every entry from the hash stored
//! before it, so the hashes of a chunk do not depend on each other and eight can share the
//! SIMD lanes of one AVX2 compression.
//!
//! The `blake3` crate uses its own lanes only for the chunks of one long input; an entry is one
//! chunk (up to 1,024 bytes), which it compresses a block at a time. Here each lane is a whole
//! entry, hashed exactly as BLAKE3 hashes a single-chunk input in derive-key mode. Inputs over
//! one chunk, CPUs without AVX2 and leftover entries go to `EntryHash::chain`, the reference.
//! The tests compare every path with it, for every input length a lane can take.
//!
//! The compression follows the BLAKE3 paper's `compress` (section 2.2) as the `blake3` crate
//! 1.8 (1.8.7 in Cargo.lock) implements it in `rust_avx2.rs` (`round`, `compress_pre`), with the lanes transposed
//! the same way. This module is the workspace's only `unsafe`: the AVX2 intrinsics that read and
//! write memory, and the call into code compiled for AVX2; each block says why it is sound.

use crate::hash::EntryHash;

/// `EntryHash::chain(prev, bytes)` of every pair, in order: eight at a time on AVX2 lanes where
/// the CPU has them. `verify` hashes its chunks with it; `caltrail-bench chain` measures it
/// beside the reference.
pub fn chain_all(pairs: &[(EntryHash, &[u8])]) -> Vec<EntryHash> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        let mut hashes = Vec::with_capacity(pairs.len());
        for group in pairs.chunks(avx2::LANES) {
            match <&[(EntryHash, &[u8]); avx2::LANES]>::try_from(group) {
                Ok(group) if group.iter().all(|(_, bytes)| avx2::fits_one_chunk(bytes)) => {
                    // SAFETY: the CPU has AVX2, checked just above.
                    hashes.extend(unsafe { avx2::chain8(group) });
                }
                _ => hashes.extend(group.iter().map(|(prev, bytes)| EntryHash::chain(prev, bytes))),
            }
        }
        return hashes;
    }
    pairs.iter().map(|(prev, bytes)| EntryHash::chain(prev, bytes)).collect()
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! BLAKE3's compression function on eight inputs at once, one per 32-bit lane of the AVX2
    //! registers, after the BLAKE3 specification (section 2) and the `blake3` crate's AVX2 code.

    use std::arch::x86_64::{
        __m256i, _mm256_add_epi32, _mm256_blendv_epi8, _mm256_loadu_si256, _mm256_or_si256,
        _mm256_permute2x128_si256, _mm256_set1_epi32, _mm256_setr_epi8, _mm256_setzero_si256,
        _mm256_shuffle_epi8, _mm256_slli_epi32, _mm256_srli_epi32, _mm256_storeu_si256,
        _mm256_unpackhi_epi32, _mm256_unpackhi_epi64, _mm256_unpacklo_epi32, _mm256_unpacklo_epi64,
        _mm256_xor_si256,
    };
    use std::sync::OnceLock;

    use crate::hash::{EntryHash, HASH_CONTEXT};

    pub(super) const LANES: usize = 8;
    const BLOCK_LEN: usize = 64;
    const CHUNK_LEN: usize = 1024;
    const PREV_LEN: usize = 32;

    const IV: [u32; 8] = [
        0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB,
        0x5BE0CD19,
    ];
    const CHUNK_START: u32 = 1 << 0;
    const CHUNK_END: u32 = 1 << 1;
    const ROOT: u32 = 1 << 3;
    const DERIVE_KEY_MATERIAL: u32 = 1 << 6;

    /// The message words each round reads, in the order of its eight G calls.
    const MSG_SCHEDULE: [[usize; 16]; 7] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
        [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8],
        [3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1],
        [10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6],
        [12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4],
        [9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7],
        [11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13],
    ];

    /// Whether `prev_hash || bytes` is a single BLAKE3 chunk.
    pub(super) fn fits_one_chunk(bytes: &[u8]) -> bool {
        PREV_LEN + bytes.len() <= CHUNK_LEN
    }

    /// The key of `HASH_CONTEXT` as little-endian words: every entry's first chaining value.
    fn context_key_words() -> &'static [u32; 8] {
        static WORDS: OnceLock<[u32; 8]> = OnceLock::new();
        WORDS.get_or_init(|| {
            let key = blake3::hazmat::hash_derive_key_context(HASH_CONTEXT);
            std::array::from_fn(|i| {
                u32::from_le_bytes([key[4 * i], key[4 * i + 1], key[4 * i + 2], key[4 * i + 3]])
            })
        })
    }

    /// The chain hashes of eight entries, each `prev_hash || bytes` at most one chunk long.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn chain8(group: &[(EntryHash, &[u8]); LANES]) -> [EntryHash; LANES] {
        // Each lane's input, zero-padded to whole blocks as BLAKE3 pads the last block.
        let mut inputs = [[0u8; CHUNK_LEN]; LANES];
        let mut n_blocks = [0usize; LANES];
        let mut last_block_len = [0u32; LANES];
        for (lane, (prev, bytes)) in group.iter().enumerate() {
            let len = PREV_LEN + bytes.len();
            assert!(len <= CHUNK_LEN, "callers pass single-chunk inputs only");
            inputs[lane][..PREV_LEN].copy_from_slice(&prev.0);
            inputs[lane][PREV_LEN..len].copy_from_slice(bytes);
            n_blocks[lane] = len.div_ceil(BLOCK_LEN);
            last_block_len[lane] = (len - (n_blocks[lane] - 1) * BLOCK_LEN) as u32;
        }
        let max_blocks = n_blocks.iter().copied().max().unwrap_or(0);
        let mut cv = context_key_words().map(|word| _mm256_set1_epi32(word as i32));
        let mut roots = [_mm256_setzero_si256(); 8];
        for block in 0..max_blocks {
            // A lane past its last block goes on computing; what it computes is never kept.
            let ends = |lane: usize| block + 1 == n_blocks[lane];
            let block_len = lanes(|lane| if ends(lane) { last_block_len[lane] } else { 64 });
            let flags = lanes(|lane| {
                let start = if block == 0 { CHUNK_START } else { 0 };
                let end = if ends(lane) { CHUNK_END | ROOT } else { 0 };
                DERIVE_KEY_MATERIAL | start | end
            });
            let ending = lanes(|lane| if ends(lane) { u32::MAX } else { 0 });
            let words = message_words(&inputs, block);
            cv = compress8(&cv, &words, block_len, flags);
            for (root, word) in roots.iter_mut().zip(cv) {
                *root = _mm256_blendv_epi8(*root, word, ending);
            }
        }
        let mut by_word = [[0u32; LANES]; 8];
        for (out, root) in by_word.iter_mut().zip(roots) {
            // SAFETY: `out` is 32 writable bytes.
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), root) };
        }
        std::array::from_fn(|lane| {
            let mut hash = [0u8; 32];
            for (word, chunk) in by_word.iter().zip(hash.chunks_exact_mut(4)) {
                chunk.copy_from_slice(&word[lane].to_le_bytes());
            }
            EntryHash(hash)
        })
    }

    /// A vector with `value(lane)` in each lane.
    #[target_feature(enable = "avx2")]
    fn lanes(value: impl Fn(usize) -> u32) -> __m256i {
        let v: [u32; LANES] = std::array::from_fn(value);
        // SAFETY: `v` is 32 readable bytes.
        unsafe { _mm256_loadu_si256(v.as_ptr().cast()) }
    }

    /// The sixteen message words of block `block` of every lane, word `w` of each lane in
    /// vector `w`. A block past the chunk panics on the slice's bounds check.
    #[target_feature(enable = "avx2")]
    fn message_words(inputs: &[[u8; CHUNK_LEN]; LANES], block: usize) -> [__m256i; 16] {
        let mut words = [_mm256_setzero_si256(); 16];
        for half in 0..2 {
            let offset = block * BLOCK_LEN + half * 32;
            let mut rows: [__m256i; 8] = std::array::from_fn(|lane| {
                let row: &[u8; 32] = inputs[lane][offset..offset + 32]
                    .try_into()
                    .expect("invariant: a range of 32 bytes is 32 bytes");
                // SAFETY: `row` is 32 readable bytes; the load is unaligned.
                unsafe { _mm256_loadu_si256(row.as_ptr().cast()) }
            });
            transpose(&mut rows);
            words[half * 8..half * 8 + 8].copy_from_slice(&rows);
        }
        words
    }

    /// Turns eight rows of eight words into eight columns: row `i` word `j` becomes vector `j`
    /// lane `i`.
    #[target_feature(enable = "avx2")]
    fn transpose(v: &mut [__m256i; 8]) {
        let ab_0145 = _mm256_unpacklo_epi32(v[0], v[1]);
        let ab_2367 = _mm256_unpackhi_epi32(v[0], v[1]);
        let cd_0145 = _mm256_unpacklo_epi32(v[2], v[3]);
        let cd_2367 = _mm256_unpackhi_epi32(v[2], v[3]);
        let ef_0145 = _mm256_unpacklo_epi32(v[4], v[5]);
        let ef_2367 = _mm256_unpackhi_epi32(v[4], v[5]);
        let gh_0145 = _mm256_unpacklo_epi32(v[6], v[7]);
        let gh_2367 = _mm256_unpackhi_epi32(v[6], v[7]);
        let abcd_04 = _mm256_unpacklo_epi64(ab_0145, cd_0145);
        let abcd_15 = _mm256_unpackhi_epi64(ab_0145, cd_0145);
        let abcd_26 = _mm256_unpacklo_epi64(ab_2367, cd_2367);
        let abcd_37 = _mm256_unpackhi_epi64(ab_2367, cd_2367);
        let efgh_04 = _mm256_unpacklo_epi64(ef_0145, gh_0145);
        let efgh_15 = _mm256_unpackhi_epi64(ef_0145, gh_0145);
        let efgh_26 = _mm256_unpacklo_epi64(ef_2367, gh_2367);
        let efgh_37 = _mm256_unpackhi_epi64(ef_2367, gh_2367);
        v[0] = _mm256_permute2x128_si256::<0x20>(abcd_04, efgh_04);
        v[1] = _mm256_permute2x128_si256::<0x20>(abcd_15, efgh_15);
        v[2] = _mm256_permute2x128_si256::<0x20>(abcd_26, efgh_26);
        v[3] = _mm256_permute2x128_si256::<0x20>(abcd_37, efgh_37);
        v[4] = _mm256_permute2x128_si256::<0x31>(abcd_04, efgh_04);
        v[5] = _mm256_permute2x128_si256::<0x31>(abcd_15, efgh_15);
        v[6] = _mm256_permute2x128_si256::<0x31>(abcd_26, efgh_26);
        v[7] = _mm256_permute2x128_si256::<0x31>(abcd_37, efgh_37);
    }

    /// One compression of every lane (chunk counter 0, as for any single-chunk input); the
    /// new chaining values, which for a lane's last block are its root hash.
    #[target_feature(enable = "avx2")]
    fn compress8(
        cv: &[__m256i; 8],
        m: &[__m256i; 16],
        block_len: __m256i,
        flags: __m256i,
    ) -> [__m256i; 8] {
        let iv = |i: usize| _mm256_set1_epi32(IV[i] as i32);
        let mut v = [
            cv[0],
            cv[1],
            cv[2],
            cv[3],
            cv[4],
            cv[5],
            cv[6],
            cv[7],
            iv(0),
            iv(1),
            iv(2),
            iv(3),
            _mm256_setzero_si256(),
            _mm256_setzero_si256(),
            block_len,
            flags,
        ];
        for s in &MSG_SCHEDULE {
            g(&mut v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
            g(&mut v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
            g(&mut v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
            g(&mut v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
            g(&mut v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
            g(&mut v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
            g(&mut v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
            g(&mut v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
        }
        std::array::from_fn(|i| _mm256_xor_si256(v[i], v[i + 8]))
    }

    /// BLAKE3's quarter-round G.
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    fn g(v: &mut [__m256i; 16], a: usize, b: usize, c: usize, d: usize, mx: __m256i, my: __m256i) {
        v[a] = _mm256_add_epi32(_mm256_add_epi32(v[a], v[b]), mx);
        v[d] = rotr16(_mm256_xor_si256(v[d], v[a]));
        v[c] = _mm256_add_epi32(v[c], v[d]);
        v[b] = rotr::<12, 20>(_mm256_xor_si256(v[b], v[c]));
        v[a] = _mm256_add_epi32(_mm256_add_epi32(v[a], v[b]), my);
        v[d] = rotr8(_mm256_xor_si256(v[d], v[a]));
        v[c] = _mm256_add_epi32(v[c], v[d]);
        v[b] = rotr::<7, 25>(_mm256_xor_si256(v[b], v[c]));
    }

    /// Rotates each lane right by `R` bits (`L` is `32 - R`).
    #[target_feature(enable = "avx2")]
    fn rotr<const R: i32, const L: i32>(x: __m256i) -> __m256i {
        _mm256_or_si256(_mm256_srli_epi32::<R>(x), _mm256_slli_epi32::<L>(x))
    }

    /// Rotates each lane right by 16 bits: a byte shuffle.
    #[target_feature(enable = "avx2")]
    fn rotr16(x: __m256i) -> __m256i {
        shuffle_bytes(x, [2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13])
    }

    /// Rotates each lane right by 8 bits: a byte shuffle.
    #[target_feature(enable = "avx2")]
    fn rotr8(x: __m256i) -> __m256i {
        shuffle_bytes(x, [1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12])
    }

    /// Byte `i` of each 128-bit half becomes its byte `order[i]`.
    #[target_feature(enable = "avx2")]
    fn shuffle_bytes(x: __m256i, order: [i8; 16]) -> __m256i {
        let o = order;
        let order = _mm256_setr_epi8(
            o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7], o[8], o[9], o[10], o[11], o[12], o[13],
            o[14], o[15], o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7], o[8], o[9], o[10], o[11],
            o[12], o[13], o[14], o[15],
        );
        _mm256_shuffle_epi8(x, order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic test bytes, so a failure can be replayed.
    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut rng = caltrail_generate::Rng::new(seed);
        (0..len).map(|_| rng.next_u64() as u8).collect()
    }

    fn check(inputs: &[(EntryHash, Vec<u8>)]) {
        let pairs: Vec<(EntryHash, &[u8])> =
            inputs.iter().map(|(prev, body)| (*prev, body.as_slice())).collect();
        let expected: Vec<EntryHash> =
            pairs.iter().map(|(prev, body)| EntryHash::chain(prev, body)).collect();
        assert_eq!(chain_all(&pairs), expected);
    }

    fn prev(seed: u64) -> EntryHash {
        EntryHash::from_slice(&bytes(seed ^ 0xABCD, 32)).unwrap()
    }

    /// Every body length from empty to past one chunk, eight of a length at a time (all lanes
    /// ending on the same block) and then mixed (lanes ending on different blocks).
    #[test]
    fn every_length_hashes_as_the_reference_does() {
        let same: Vec<(EntryHash, Vec<u8>)> = (0..=1_100usize)
            .flat_map(|len| (0..8u64).map(move |i| (prev(len as u64 * 8 + i), bytes(i, len))))
            .collect();
        check(&same);
        let mixed: Vec<(EntryHash, Vec<u8>)> = (0..9_000u64)
            .map(|i| (prev(i), bytes(i, (i.wrapping_mul(7919) % 1_000) as usize)))
            .collect();
        check(&mixed);
    }

    /// A group with one input longer than a chunk, and a leftover group shorter than eight.
    #[test]
    fn long_inputs_and_leftovers_use_the_reference() {
        let mut inputs: Vec<(EntryHash, Vec<u8>)> =
            (0..13u64).map(|i| (prev(i), bytes(i, 300 + i as usize))).collect();
        inputs[3].1 = bytes(99, 5_000);
        check(&inputs);
        check(&inputs[..0]);
    }

    /// Flipping any one bit of an input changes its hash: no byte is left out of a lane.
    #[test]
    fn every_byte_counts() {
        let body = bytes(5, 700);
        let base: Vec<(EntryHash, Vec<u8>)> = (0..8).map(|_| (prev(1), body.clone())).collect();
        let pairs: Vec<(EntryHash, &[u8])> = base.iter().map(|(p, b)| (*p, b.as_slice())).collect();
        let reference = chain_all(&pairs)[0];
        assert_eq!(reference, EntryHash::chain(&prev(1), &body));
        for at in 0..body.len() {
            let mut flipped = body.clone();
            flipped[at] ^= 1;
            let group: Vec<(EntryHash, &[u8])> = (0..8)
                .map(|lane| (prev(1), if lane == at % 8 { &flipped[..] } else { &body[..] }))
                .collect();
            let hashes = chain_all(&group);
            assert_ne!(hashes[at % 8], reference, "byte {at}");
            assert_eq!(hashes[(at + 1) % 8], reference, "byte {at}");
        }
    }
}
