//! The chain hash: how an entry's hash is computed from the previous hash and its stored bytes.

use std::fmt;

/// The BLAKE3 key-derivation context of entry hashes. Changing it changes every hash: it is part
/// of the ledger format.
pub const HASH_CONTEXT: &str = "caltrail 2026-11-23 ledger entry hash v1";

/// A 32-byte BLAKE3 hash, shown as 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryHash(pub [u8; 32]);

impl EntryHash {
    /// The `prev_hash` of the first entry.
    pub const GENESIS: EntryHash = EntryHash([0; 32]);

    /// `hash = BLAKE3-derive-key(HASH_CONTEXT, prev_hash || stored bytes)`. `prev_hash` has a
    /// fixed length, so the concatenation is unambiguous.
    pub fn chain(prev: &EntryHash, stored_bytes: &[u8]) -> EntryHash {
        // Deriving the context key is a hash of its own; done once, then the hasher is copied.
        static KEYED: std::sync::OnceLock<blake3::Hasher> = std::sync::OnceLock::new();
        let mut hasher = KEYED.get_or_init(|| blake3::Hasher::new_derive_key(HASH_CONTEXT)).clone();
        hasher.update(&prev.0);
        hasher.update(stored_bytes);
        EntryHash(*hasher.finalize().as_bytes())
    }

    /// A hash from 32 bytes; `None` for another length.
    pub fn from_slice(bytes: &[u8]) -> Option<EntryHash> {
        <[u8; 32]>::try_from(bytes).ok().map(EntryHash)
    }

    /// Parses 64 hex digits, either case.
    pub fn parse_hex(text: &str) -> Result<EntryHash, String> {
        let bytes = hex::decode(text.trim())
            .map_err(|_| format!("must be 64 hex digits, got {:?}", text.trim()))?;
        EntryHash::from_slice(&bytes)
            .ok_or_else(|| format!("must be 64 hex digits, got {}", text.trim().len()))
    }

    /// The hash as 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        self.hex_digits().as_str().to_owned()
    }

    /// The hash as 64 lower-case hex digits, without allocating: an export writes one per entry.
    pub fn hex_digits(&self) -> HexDigits {
        const LANES: u64 = 0x0101_0101_0101_0101;
        let mut digits = [0u8; 64];
        // Four bytes to eight digits at a time, in a word: a table lookup per digit was a
        // twelfth of an export's scan thread.
        for (out, four) in digits.chunks_exact_mut(8).zip(self.0.chunks_exact(4)) {
            let x = u64::from(u32::from_be_bytes(four.try_into().expect("four bytes")));
            // Each byte to a 16-bit lane of its own, then its high nibble to the lane's high
            // byte: one nibble a byte, in the order the digits are written.
            let x = (x | x << 16) & 0x0000_ffff_0000_ffff;
            let x = (x | x << 8) & 0x00ff_00ff_00ff_00ff;
            let nibbles = (x & 0x00f0_00f0_00f0_00f0) << 4 | (x & 0x000f_000f_000f_000f);
            // '0' + n, and 'a' - '0' - 10 more where n > 9 (n + 6 carries into bit 4 then).
            let letters = ((nibbles + 6 * LANES) >> 4) & LANES;
            let ascii = nibbles + u64::from(b'0') * LANES + letters * u64::from(b'a' - b'0' - 10);
            out.copy_from_slice(&ascii.to_be_bytes());
        }
        HexDigits(digits)
    }
}

/// An [`EntryHash`] as 64 lower-case hex digits.
#[derive(Clone, Copy)]
pub struct HexDigits([u8; 64]);

impl HexDigits {
    /// The digits as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("invariant: hex digits are ASCII")
    }
}

impl fmt::Display for EntryHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for EntryHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntryHash({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden vector: if this changes, every ledger's chain changes.
    #[test]
    fn chain_hash_is_stable() {
        let first = EntryHash::chain(&EntryHash::GENESIS, b"caltrail");
        assert_eq!(first.to_hex(), first.to_hex().to_lowercase());
        assert_eq!(
            EntryHash::chain(&first, b"").to_hex(),
            EntryHash::chain(&EntryHash::parse_hex(&first.to_hex()).unwrap(), b"").to_hex()
        );
        assert_eq!(first.to_hex(), GOLDEN_FIRST);
    }

    #[test]
    fn hex_digits_are_the_hex_crates_lower_case() {
        let mut hash = EntryHash::chain(&EntryHash::GENESIS, b"caltrail");
        for n in 0..=255u8 {
            hash.0[usize::from(n) % 32] = n;
            assert_eq!(hash.hex_digits().as_str(), hex::encode(hash.0));
            assert_eq!(hash.to_hex(), hex::encode(hash.0));
        }
    }

    const GOLDEN_FIRST: &str = "34cb7d5baae3c5421f5c37f3a3271b0de5488b40990ec60bf66331f7a0fdd3d3";

    #[test]
    fn bad_hex_is_refused() {
        assert!(EntryHash::parse_hex("abc").is_err());
        assert!(EntryHash::parse_hex(&"g".repeat(64)).is_err());
    }
}
