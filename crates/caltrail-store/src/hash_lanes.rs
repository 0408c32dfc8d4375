//! Many independent chain hashes at once: `verify` re-hashes every entry from the hash stored
//! before it, so the hashes of a chunk do not depend on each other and eight (AVX2) or sixteen
//! (AVX-512) can share the SIMD lanes of one compression.
//!
//! The `blake3` crate uses its own lanes only for the chunks of one long input; an entry is one
//! chunk (up to 1,024 bytes), which it compresses a block at a time. Here each lane is a whole
//! entry, hashed exactly as BLAKE3 hashes a single-chunk input in derive-key mode. Inputs over
//! one chunk, CPUs without AVX2 and leftover entries go to `EntryHash::chain`, the reference.
//! The tests compare every path with it, for every input length a lane can take.
//!
//! The compression follows the BLAKE3 paper's `compress` (section 2.2) as the `blake3` crate
//! 1.8 (1.8.7 in Cargo.lock) implements it in `rust_avx2.rs` (`round`, `compress_pre`) and
//! `c/blake3_avx512.c` (`round_fn16`, `transpose_vecs_512`), with the lanes transposed the same
//! way. This module is the workspace's only `unsafe`: the SIMD intrinsics that read and write
//! memory, and the calls into code compiled for AVX2 or AVX-512; each block says why it is
//! sound.

use crate::hash::EntryHash;

/// A way of hashing many entries, each from the hash before it.
#[cfg(any(target_arch = "x86_64", test))]
type Chain = fn(&[(EntryHash, &[u8])]) -> Vec<EntryHash>;

/// A SIMD compression of `N` entries at once, each at most one chunk long.
#[cfg(target_arch = "x86_64")]
type Kernel<const N: usize> =
    unsafe fn(&mut lanes::Inputs<N>, &[(EntryHash, &[u8]); N]) -> [EntryHash; N];

/// `EntryHash::chain(prev, bytes)` of every pair, in order: sixteen at a time on AVX-512 lanes
/// where the CPU has them, else eight at a time on AVX2 lanes. `verify` hashes its chunks with
/// it; `caltrail-bench chain` measures it beside the reference.
pub fn chain_all(pairs: &[(EntryHash, &[u8])]) -> Vec<EntryHash> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked just above.
        return unsafe { in_groups(pairs, avx512::chain16, chain_avx2) };
    }
    chain_avx2(pairs)
}

/// `chain_all` on AVX2 lanes where the CPU has them, else one at a time with the reference.
fn chain_avx2(pairs: &[(EntryHash, &[u8])]) -> Vec<EntryHash> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { in_groups(pairs, avx2::chain8, chain_one_at_a_time) };
    }
    chain_one_at_a_time(pairs)
}

/// The reference, one entry at a time.
fn chain_one_at_a_time(pairs: &[(EntryHash, &[u8])]) -> Vec<EntryHash> {
    pairs.iter().map(|(prev, bytes)| EntryHash::chain(prev, bytes)).collect()
}

/// The hashes of `pairs`, `N` at a time by `kernel` where a group of `N` are all one chunk
/// long, and by `rest` for any other group (a shorter last one, one with a longer input).
///
/// # Safety
/// The CPU must have the instructions `kernel` is compiled for.
#[cfg(target_arch = "x86_64")]
unsafe fn in_groups<const N: usize>(
    pairs: &[(EntryHash, &[u8])],
    kernel: Kernel<N>,
    rest: Chain,
) -> Vec<EntryHash> {
    let mut hashes = Vec::with_capacity(pairs.len());
    // One buffer for every group: laying out a group writes its lanes' blocks, where zeroing
    // and returning a fresh one per group moved 2 KiB per entry.
    let mut inputs = Box::new(lanes::Inputs::<N>::new());
    for group in pairs.chunks(N) {
        match <&[(EntryHash, &[u8]); N]>::try_from(group) {
            Ok(group) if group.iter().all(|(_, bytes)| lanes::fits_one_chunk(bytes)) => {
                // SAFETY: the caller's CPU has what `kernel` needs.
                hashes.extend(unsafe { kernel(&mut inputs, group) });
            }
            _ => hashes.extend(rest(group)),
        }
    }
    hashes
}

#[cfg(target_arch = "x86_64")]
mod lanes {
    //! What both widths share: BLAKE3's constants, each lane's input laid out in whole blocks,
    //! and what each block says of each lane. Plain code; only the compressions are SIMD.

    use std::sync::OnceLock;

    use crate::hash::{EntryHash, HASH_CONTEXT};

    pub(super) const BLOCK_LEN: usize = 64;
    pub(super) const CHUNK_LEN: usize = 1024;
    const PREV_LEN: usize = 32;

    pub(super) const IV: [u32; 8] = [
        0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB,
        0x5BE0CD19,
    ];
    const CHUNK_START: u32 = 1 << 0;
    const CHUNK_END: u32 = 1 << 1;
    const ROOT: u32 = 1 << 3;
    const DERIVE_KEY_MATERIAL: u32 = 1 << 6;

    /// The message words each round reads, in the order of its eight G calls.
    pub(super) const MSG_SCHEDULE: [[usize; 16]; 7] = [
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
    pub(super) fn context_key_words() -> &'static [u32; 8] {
        static WORDS: OnceLock<[u32; 8]> = OnceLock::new();
        WORDS.get_or_init(|| {
            let key = blake3::hazmat::hash_derive_key_context(HASH_CONTEXT);
            std::array::from_fn(|i| {
                u32::from_le_bytes([key[4 * i], key[4 * i + 1], key[4 * i + 2], key[4 * i + 3]])
            })
        })
    }

    /// Each lane's input, `prev_hash || bytes` zero-padded to whole blocks as BLAKE3 pads the
    /// last block, and where it ends. The bytes after a lane's last block are left from
    /// earlier groups: the blocks a lane computes past its last are never kept.
    pub(super) struct Inputs<const N: usize> {
        pub(super) bytes: [[u8; CHUNK_LEN]; N],
        n_blocks: [usize; N],
        last_block_len: [u32; N],
    }

    /// What one block of every lane is compressed with.
    pub(super) struct Block<const N: usize> {
        /// The bytes of the block that are input, not padding.
        pub(super) len: [u32; N],
        pub(super) flags: [u32; N],
        /// Whether it is the lane's last block, whose output is the lane's hash.
        pub(super) ends: [bool; N],
    }

    impl<const N: usize> Inputs<N> {
        /// A buffer for groups of `N`, laid out by `lay_out`.
        pub(super) fn new() -> Inputs<N> {
            Inputs { bytes: [[0u8; CHUNK_LEN]; N], n_blocks: [0; N], last_block_len: [0; N] }
        }

        /// Lays out the inputs of `group`, each `prev_hash || bytes` at most one chunk long:
        /// each lane's bytes and the zeros after them to the end of its last block.
        pub(super) fn lay_out(&mut self, group: &[(EntryHash, &[u8]); N]) {
            for (lane, (prev, bytes)) in group.iter().enumerate() {
                let len = PREV_LEN + bytes.len();
                assert!(len <= CHUNK_LEN, "callers pass single-chunk inputs only");
                let n_blocks = len.div_ceil(BLOCK_LEN);
                let lane_bytes = &mut self.bytes[lane];
                lane_bytes[..PREV_LEN].copy_from_slice(&prev.0);
                lane_bytes[PREV_LEN..len].copy_from_slice(bytes);
                lane_bytes[len..n_blocks * BLOCK_LEN].fill(0);
                self.n_blocks[lane] = n_blocks;
                self.last_block_len[lane] = (len - (n_blocks - 1) * BLOCK_LEN) as u32;
            }
        }

        /// The number of blocks of the longest lane: a lane past its last block goes on
        /// computing, and what it computes is never kept.
        pub(super) fn max_blocks(&self) -> usize {
            self.n_blocks.iter().copied().max().unwrap_or(0)
        }

        pub(super) fn block(&self, block: usize) -> Block<N> {
            let ends: [bool; N] = std::array::from_fn(|lane| block + 1 == self.n_blocks[lane]);
            Block {
                len: std::array::from_fn(|lane| {
                    if ends[lane] { self.last_block_len[lane] } else { BLOCK_LEN as u32 }
                }),
                flags: std::array::from_fn(|lane| {
                    let start = if block == 0 { CHUNK_START } else { 0 };
                    let end = if ends[lane] { CHUNK_END | ROOT } else { 0 };
                    DERIVE_KEY_MATERIAL | start | end
                }),
                ends,
            }
        }
    }

    /// The hash of each lane, from its eight output words (`by_word[word][lane]`).
    pub(super) fn hashes<const N: usize>(by_word: &[[u32; N]; 8]) -> [EntryHash; N] {
        std::array::from_fn(|lane| {
            let mut hash = [0u8; 32];
            for (word, chunk) in by_word.iter().zip(hash.chunks_exact_mut(4)) {
                chunk.copy_from_slice(&word[lane].to_le_bytes());
            }
            EntryHash(hash)
        })
    }
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

    use super::lanes::{self, BLOCK_LEN, CHUNK_LEN, IV, Inputs, MSG_SCHEDULE};
    use crate::hash::EntryHash;

    pub(super) const LANES: usize = 8;

    /// The chain hashes of eight entries, each `prev_hash || bytes` at most one chunk long.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn chain8(
        inputs: &mut Inputs<LANES>,
        group: &[(EntryHash, &[u8]); LANES],
    ) -> [EntryHash; LANES] {
        inputs.lay_out(group);
        let mut cv = lanes::context_key_words().map(|word| _mm256_set1_epi32(word as i32));
        let mut roots = [_mm256_setzero_si256(); 8];
        for block in 0..inputs.max_blocks() {
            let params = inputs.block(block);
            let ending = vector(params.ends.map(|ends| if ends { u32::MAX } else { 0 }));
            let words = message_words(&inputs.bytes, block);
            cv = compress8(&cv, &words, vector(params.len), vector(params.flags));
            for (root, word) in roots.iter_mut().zip(cv) {
                *root = _mm256_blendv_epi8(*root, word, ending);
            }
        }
        let mut by_word = [[0u32; LANES]; 8];
        for (out, root) in by_word.iter_mut().zip(roots) {
            // SAFETY: `out` is 32 writable bytes.
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), root) };
        }
        lanes::hashes(&by_word)
    }

    /// A vector with `v[lane]` in each lane.
    #[target_feature(enable = "avx2")]
    fn vector(v: [u32; LANES]) -> __m256i {
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

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! BLAKE3's compression function on sixteen inputs at once, one per 32-bit lane of the
    //! AVX-512 registers, after the `blake3` crate's AVX-512 code (`c/blake3_avx512.c`): the
    //! same rounds as the AVX2 code, with rotations in one instruction each.

    use std::arch::x86_64::{
        __m512i, _mm512_add_epi32, _mm512_loadu_si512, _mm512_mask_mov_epi32, _mm512_ror_epi32,
        _mm512_set1_epi32, _mm512_setzero_si512, _mm512_shuffle_i32x4, _mm512_storeu_si512,
        _mm512_unpackhi_epi32, _mm512_unpackhi_epi64, _mm512_unpacklo_epi32, _mm512_unpacklo_epi64,
        _mm512_xor_si512,
    };

    use super::lanes::{self, BLOCK_LEN, CHUNK_LEN, IV, Inputs, MSG_SCHEDULE};
    use crate::hash::EntryHash;

    pub(super) const LANES: usize = 16;

    /// The chain hashes of sixteen entries, each `prev_hash || bytes` at most one chunk long.
    ///
    /// # Safety
    /// The CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn chain16(
        inputs: &mut Inputs<LANES>,
        group: &[(EntryHash, &[u8]); LANES],
    ) -> [EntryHash; LANES] {
        inputs.lay_out(group);
        let mut cv = lanes::context_key_words().map(|word| _mm512_set1_epi32(word as i32));
        let mut roots = [_mm512_setzero_si512(); 8];
        for block in 0..inputs.max_blocks() {
            let params = inputs.block(block);
            let ending = params
                .ends
                .iter()
                .enumerate()
                .fold(0u16, |mask, (lane, ends)| mask | (u16::from(*ends) << lane));
            let words = message_words(&inputs.bytes, block);
            cv = compress16(&cv, &words, vector(params.len), vector(params.flags));
            for (root, word) in roots.iter_mut().zip(cv) {
                *root = _mm512_mask_mov_epi32(*root, ending, word);
            }
        }
        let mut by_word = [[0u32; LANES]; 8];
        for (out, root) in by_word.iter_mut().zip(roots) {
            // SAFETY: `out` is 64 writable bytes.
            unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), root) };
        }
        lanes::hashes(&by_word)
    }

    /// A vector with `v[lane]` in each lane.
    #[target_feature(enable = "avx512f")]
    fn vector(v: [u32; LANES]) -> __m512i {
        // SAFETY: `v` is 64 readable bytes.
        unsafe { _mm512_loadu_si512(v.as_ptr().cast()) }
    }

    /// The sixteen message words of block `block` of every lane, word `w` of each lane in
    /// vector `w`. A block past the chunk panics on the slice's bounds check.
    #[target_feature(enable = "avx512f")]
    fn message_words(inputs: &[[u8; CHUNK_LEN]; LANES], block: usize) -> [__m512i; 16] {
        let offset = block * BLOCK_LEN;
        let mut rows: [__m512i; 16] = std::array::from_fn(|lane| {
            let row: &[u8; BLOCK_LEN] = inputs[lane][offset..offset + BLOCK_LEN]
                .try_into()
                .expect("invariant: a range of 64 bytes is 64 bytes");
            // SAFETY: `row` is 64 readable bytes; the load is unaligned.
            unsafe { _mm512_loadu_si512(row.as_ptr().cast()) }
        });
        transpose(&mut rows);
        rows
    }

    /// Turns sixteen rows of sixteen words into sixteen columns: row `i` word `j` becomes
    /// vector `j` lane `i` (`transpose_vecs_512`).
    #[target_feature(enable = "avx512f")]
    fn transpose(v: &mut [__m512i; 16]) {
        // Words: pairs of rows interleaved, then pairs of pairs by 64 bits.
        let pairs: [__m512i; 16] = std::array::from_fn(|i| {
            let (a, b) = (v[i / 2 * 2], v[i / 2 * 2 + 1]);
            if i % 2 == 0 { _mm512_unpacklo_epi32(a, b) } else { _mm512_unpackhi_epi32(a, b) }
        });
        // quads[4 * q + k]: rows 4q..4q+4, words k, k + 4, k + 8, k + 12 of each 128-bit part.
        let quads: [__m512i; 16] = std::array::from_fn(|i| {
            let (q, k) = (i / 4, i % 4);
            let (a, b) = (pairs[4 * q + k / 2], pairs[4 * q + 2 + k / 2]);
            if k % 2 == 0 { _mm512_unpacklo_epi64(a, b) } else { _mm512_unpackhi_epi64(a, b) }
        });
        // 128-bit parts: rows 0..8 and 8..16 each gathered, then the two halves joined.
        let eights: [__m512i; 16] = std::array::from_fn(|i| {
            let (half, j) = (i / 8, i % 8);
            let (a, b) = (quads[8 * half + j % 4], quads[8 * half + 4 + j % 4]);
            if j < 4 { unpack_lo_128(a, b) } else { unpack_hi_128(a, b) }
        });
        *v = std::array::from_fn(|j| {
            let (a, b) = (eights[j % 8], eights[8 + j % 8]);
            if j < 8 { unpack_lo_128(a, b) } else { unpack_hi_128(a, b) }
        });
    }

    /// 128-bit parts 0 and 2 of `a`, then of `b`.
    #[target_feature(enable = "avx512f")]
    fn unpack_lo_128(a: __m512i, b: __m512i) -> __m512i {
        _mm512_shuffle_i32x4::<0x88>(a, b)
    }

    /// 128-bit parts 1 and 3 of `a`, then of `b`.
    #[target_feature(enable = "avx512f")]
    fn unpack_hi_128(a: __m512i, b: __m512i) -> __m512i {
        _mm512_shuffle_i32x4::<0xdd>(a, b)
    }

    /// One compression of every lane (chunk counter 0, as for any single-chunk input); the
    /// new chaining values, which for a lane's last block are its root hash.
    #[target_feature(enable = "avx512f")]
    fn compress16(
        cv: &[__m512i; 8],
        m: &[__m512i; 16],
        block_len: __m512i,
        flags: __m512i,
    ) -> [__m512i; 8] {
        let iv = |i: usize| _mm512_set1_epi32(IV[i] as i32);
        let zero = _mm512_setzero_si512();
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
            zero,
            zero,
            block_len,
            flags,
        ];
        for s in &MSG_SCHEDULE {
            g(&mut v, [0, 4, 8, 12], m[s[0]], m[s[1]]);
            g(&mut v, [1, 5, 9, 13], m[s[2]], m[s[3]]);
            g(&mut v, [2, 6, 10, 14], m[s[4]], m[s[5]]);
            g(&mut v, [3, 7, 11, 15], m[s[6]], m[s[7]]);
            g(&mut v, [0, 5, 10, 15], m[s[8]], m[s[9]]);
            g(&mut v, [1, 6, 11, 12], m[s[10]], m[s[11]]);
            g(&mut v, [2, 7, 8, 13], m[s[12]], m[s[13]]);
            g(&mut v, [3, 4, 9, 14], m[s[14]], m[s[15]]);
        }
        std::array::from_fn(|i| _mm512_xor_si512(v[i], v[i + 8]))
    }

    /// BLAKE3's quarter-round G on the state words `a`, `b`, `c`, `d`.
    #[target_feature(enable = "avx512f")]
    fn g(v: &mut [__m512i; 16], [a, b, c, d]: [usize; 4], mx: __m512i, my: __m512i) {
        v[a] = _mm512_add_epi32(_mm512_add_epi32(v[a], v[b]), mx);
        v[d] = _mm512_ror_epi32::<16>(_mm512_xor_si512(v[d], v[a]));
        v[c] = _mm512_add_epi32(v[c], v[d]);
        v[b] = _mm512_ror_epi32::<12>(_mm512_xor_si512(v[b], v[c]));
        v[a] = _mm512_add_epi32(_mm512_add_epi32(v[a], v[b]), my);
        v[d] = _mm512_ror_epi32::<8>(_mm512_xor_si512(v[d], v[a]));
        v[c] = _mm512_add_epi32(v[c], v[d]);
        v[b] = _mm512_ror_epi32::<7>(_mm512_xor_si512(v[b], v[c]));
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
        // Sixteen lanes where the CPU has AVX-512, eight where it has AVX2, and eight alone.
        assert_eq!(chain_all(&pairs), expected);
        assert_eq!(chain_avx2(&pairs), expected);
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
        // Longest first: each group's lanes are laid out over longer ones of the group before.
        let shrinking: Vec<(EntryHash, Vec<u8>)> = same.iter().rev().cloned().collect();
        check(&shrinking);
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

    /// Flipping any one bit of an input changes its hash: no byte is left out of a lane, on
    /// sixteen lanes (AVX-512, where the CPU has it) and on eight (AVX2).
    #[test]
    fn every_byte_counts() {
        let body = bytes(5, 700);
        let reference = EntryHash::chain(&prev(1), &body);
        let widths: [(usize, Chain); 2] = [(16, chain_all), (8, chain_avx2)];
        for (width, chain) in widths {
            for at in 0..body.len() {
                let mut flipped = body.clone();
                flipped[at] ^= 1;
                let group: Vec<(EntryHash, &[u8])> = (0..width)
                    .map(|lane| {
                        (prev(1), if lane == at % width { &flipped[..] } else { &body[..] })
                    })
                    .collect();
                let hashes = chain(&group);
                assert_ne!(hashes[at % width], reference, "{width} lanes, byte {at}");
                assert_eq!(hashes[(at + 1) % width], reference, "{width} lanes, byte {at}");
            }
        }
    }
}
