//! C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys, in Go's formats: a private key
//! `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`, a verifier key
//! `<name>+<hex id>+<base64(0x01 || public key)>`, the key id the first four bytes of
//! `SHA-256(name || 0x0A || 0x01 || public key)`, and signature lines
//! `— <name> <base64(id || signature)>` after a blank line.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::Signer;
use sha2::{Digest, Sha256};

/// The signature type of Ed25519 note signatures in the signed-note registry.
pub const ED25519: u8 = 0x01;

/// The signature type of timestamped Ed25519 checkpoint cosignatures (c2sp.org/tlog-cosignature).
pub const COSIGNATURE: u8 = 0x04;

/// The em dash and space that open a signature line.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Why a key, a note or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// A key in the wrong format.
    #[error("not a key: {0}")]
    Key(String),
    /// A note in the wrong format.
    #[error("not a signed note: {0}")]
    Format(String),
    /// A signature that does not verify.
    #[error("{0}")]
    Signature(String),
}

/// Strict standard base64 (RFC 4648, section 4), with padding, canonical.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let bytes = STANDARD.decode(text).ok()?;
    // The engine accepts non-canonical trailing bits: re-encoding must give the text back.
    (STANDARD.encode(&bytes) == text).then_some(bytes)
}

/// Standard base64 with padding, as notes use.
pub fn encode_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// A key name as signed-note allows it: not empty, no Unicode space, no `+`, no control
/// character.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if let Some(c) = name.chars().find(|c| c.is_whitespace() || *c == '+' || c.is_control()) {
        return Err(format!(
            "the name {name:?} holds {c:?}: names hold no space, '+' or control character"
        ));
    }
    Ok(())
}

fn key_id(name: &str, kind: u8, public: &[u8; 32]) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', kind]);
    hasher.update(public);
    let digest = hasher.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// An Ed25519 key that signs notes (`ED25519`) or cosigns checkpoints (`COSIGNATURE`) under
/// a name.
pub struct SigningKey {
    name: String,
    kind: u8,
    key: ed25519_dalek::SigningKey,
}

impl SigningKey {
    /// A new note signing key from the operating system's random source.
    pub fn generate(name: &str) -> Result<SigningKey, NoteError> {
        SigningKey::generate_kind(name, ED25519)
    }

    /// A new key of `kind` (`ED25519` or `COSIGNATURE`).
    pub fn generate_kind(name: &str, kind: u8) -> Result<SigningKey, NoteError> {
        check_name(name).map_err(NoteError::Key)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| NoteError::Key(format!("no randomness: {e}")))?;
        Ok(SigningKey {
            name: name.to_owned(),
            kind,
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    /// What the key signs: `ED25519` notes or `COSIGNATURE`s.
    pub fn kind(&self) -> u8 {
        self.kind
    }

    /// The cosignature line of a checkpoint's note text at `timestamp` (POSIX seconds):
    /// `— <name> base64(id || timestamp || signature)`, the signature over
    /// `cosignature/v1\ntime <timestamp>\n` and the text.
    pub fn cosign_line(&self, text: &str, timestamp: u64) -> String {
        let message = format!("cosignature/v1\ntime {timestamp}\n{text}");
        let mut bytes = self.verifier().id.to_be_bytes().to_vec();
        bytes.extend_from_slice(&timestamp.to_be_bytes());
        bytes.extend_from_slice(&self.key.sign(message.as_bytes()).to_bytes());
        format!("{SIGNATURE_PREFIX}{} {}\n", self.name, encode_base64(&bytes))
    }

    /// Reads `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`.
    pub fn parse(text: &str) -> Result<SigningKey, NoteError> {
        let text = text.trim_end_matches(['\n', '\r']);
        let bad = |why: &str| NoteError::Key(format!("{why} (expected PRIVATE+KEY+name+id+key)"));
        let rest =
            text.strip_prefix("PRIVATE+KEY+").ok_or_else(|| bad("no PRIVATE+KEY+ prefix"))?;
        // The key's base64 may hold '+': it is all that follows the second '+'.
        let parts: Vec<&str> = rest.splitn(3, '+').collect();
        let [name, id, key] = parts[..] else {
            return Err(bad("not three parts after the prefix"));
        };
        check_name(name).map_err(NoteError::Key)?;
        let bytes = decode_base64(key).ok_or_else(|| bad("the key is not canonical base64"))?;
        let [kind @ (ED25519 | COSIGNATURE), seed @ ..] = bytes.as_slice() else {
            return Err(bad("not an Ed25519 key"));
        };
        let seed: [u8; 32] = seed.try_into().map_err(|_| bad("the seed is not 32 bytes"))?;
        let key = SigningKey {
            name: name.to_owned(),
            kind: *kind,
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        };
        if format!("{:08x}", key.verifier().id) != id {
            return Err(bad("the key id does not match the key"));
        }
        Ok(key)
    }

    /// The key's name: the log's origin, or the witness's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The private key in Go's note format.
    pub fn to_text(&self) -> String {
        let mut bytes = vec![self.kind];
        bytes.extend_from_slice(&self.key.to_bytes());
        format!("PRIVATE+KEY+{}+{:08x}+{}", self.name, self.verifier().id, encode_base64(&bytes))
    }

    /// The verifier key an auditor keeps.
    pub fn verifier(&self) -> VerifierKey {
        let public = self.key.verifying_key().to_bytes();
        VerifierKey {
            name: self.name.clone(),
            kind: self.kind,
            id: key_id(&self.name, self.kind, &public),
            public,
        }
    }

    /// The signature line of `text` (a note text, ending in a newline).
    pub fn sign_line(&self, text: &str) -> String {
        let mut bytes = self.verifier().id.to_be_bytes().to_vec();
        bytes.extend_from_slice(&self.key.sign(text.as_bytes()).to_bytes());
        format!("{SIGNATURE_PREFIX}{} {}\n", self.name, encode_base64(&bytes))
    }
}

/// The public half of a `SigningKey`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    /// The key's name.
    pub name: String,
    /// `ED25519` or `COSIGNATURE`.
    pub kind: u8,
    /// The key id: the first four bytes of the key's hash.
    pub id: u32,
    /// The Ed25519 public key.
    pub public: [u8; 32],
}

impl VerifierKey {
    /// Reads `<name>+<hex id>+<base64(0x01 || public key)>`.
    pub fn parse(text: &str) -> Result<VerifierKey, NoteError> {
        let text = text.trim_end_matches(['\n', '\r']);
        let bad = |why: &str| NoteError::Key(format!("{why} (expected name+id+key)"));
        // The key's base64 may hold '+': it is all that follows the second '+'.
        let parts: Vec<&str> = text.splitn(3, '+').collect();
        let [name, id, key] = parts[..] else { return Err(bad("not three parts")) };
        check_name(name).map_err(NoteError::Key)?;
        if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(bad("the key id is not 8 lower-case hex digits"));
        }
        let bytes = decode_base64(key).ok_or_else(|| bad("the key is not canonical base64"))?;
        let [kind @ (ED25519 | COSIGNATURE), public @ ..] = bytes.as_slice() else {
            return Err(bad("not an Ed25519 key"));
        };
        let public: [u8; 32] = public.try_into().map_err(|_| bad("the key is not 32 bytes"))?;
        ed25519_dalek::VerifyingKey::from_bytes(&public)
            .map_err(|_| bad("not a valid Ed25519 point"))?;
        let parsed = VerifierKey {
            name: name.to_owned(),
            kind: *kind,
            id: key_id(name, *kind, &public),
            public,
        };
        if format!("{:08x}", parsed.id) != id {
            return Err(bad("the key id does not match the name and key"));
        }
        Ok(parsed)
    }

    /// The key as `name+hash+base64`.
    pub fn to_text(&self) -> String {
        let mut bytes = vec![self.kind];
        bytes.extend_from_slice(&self.public);
        format!("{}+{:08x}+{}", self.name, self.id, encode_base64(&bytes))
    }

    fn verifies(&self, text: &str, signature: &[u8]) -> bool {
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&self.public) else { return false };
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else { return false };
        key.verify_strict(text.as_bytes(), &signature).is_ok()
    }
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The signer's name.
    pub name: String,
    /// The signer's key id.
    pub id: u32,
    /// The signature bytes after the key id.
    pub signature: Vec<u8>,
}

/// A signed note: the text (with its final newline) and its signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    /// The text signed.
    pub text: String,
    /// The signature lines, in order.
    pub signatures: Vec<NoteSignature>,
}

impl SignedNote {
    /// Parses a note strictly: UTF-8 without control characters but newline, the text
    /// separated from at least one signature line by the last blank line.
    pub fn parse(note: &str) -> Result<SignedNote, NoteError> {
        let bad = |why: String| NoteError::Format(why);
        if let Some(c) = note.chars().find(|c| c.is_control() && *c != '\n') {
            return Err(bad(format!("it holds the control character {c:?}")));
        }
        if !note.ends_with('\n') {
            return Err(bad("it does not end with a newline".into()));
        }
        let split = note
            .rfind("\n\n")
            .ok_or_else(|| bad("no blank line between the text and the signatures".into()))?;
        let text = &note[..=split];
        let mut signatures = Vec::new();
        for line in note[split + 2..].lines() {
            let rest = line.strip_prefix(SIGNATURE_PREFIX).ok_or_else(|| {
                bad(format!(
                    "the signature line {line:?} does not start with an em dash and a space"
                ))
            })?;
            let (name, signature) = rest
                .split_once(' ')
                .ok_or_else(|| bad(format!("the signature line {line:?} has no signature")))?;
            check_name(name).map_err(bad)?;
            let bytes = decode_base64(signature)
                .ok_or_else(|| bad(format!("the signature of {name} is not canonical base64")))?;
            if bytes.len() < 5 {
                return Err(bad(format!("the signature of {name} is too short")));
            }
            signatures.push(NoteSignature {
                name: name.to_owned(),
                id: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
                signature: bytes[4..].to_vec(),
            });
        }
        if signatures.is_empty() {
            return Err(bad("it has no signature line".into()));
        }
        Ok(SignedNote { text: text.to_owned(), signatures })
    }

    /// The note signed by each key.
    pub fn sign(text: &str, keys: &[&SigningKey]) -> String {
        let mut note = format!("{text}\n");
        for key in keys {
            note.push_str(&key.sign_line(text));
        }
        note
    }

    /// Checks the signature of `key`: present (same name and id) and valid. Signatures of
    /// other keys are ignored, as the specification requires.
    pub fn verify(&self, key: &VerifierKey) -> Result<(), NoteError> {
        if key.kind != ED25519 {
            return Err(NoteError::Signature(format!(
                "{} is a cosigner's key, not a log's",
                key.name
            )));
        }
        let mine: Vec<&NoteSignature> =
            self.signatures.iter().filter(|s| s.name == key.name && s.id == key.id).collect();
        if mine.is_empty() {
            return Err(NoteError::Signature(format!(
                "no signature by the key {}+{:08x}",
                key.name, key.id
            )));
        }
        for signature in mine {
            if !key.verifies(&self.text, &signature.signature) {
                return Err(NoteError::Signature(format!(
                    "the signature by {}+{:08x} does not verify: the note was changed, or signed by another key",
                    key.name, key.id
                )));
            }
        }
        Ok(())
    }

    /// Checks the cosignature of a cosigner `key` (c2sp.org/tlog-cosignature, Ed25519) and
    /// gives its timestamp.
    pub fn verify_cosignature(&self, key: &VerifierKey) -> Result<u64, NoteError> {
        if key.kind != COSIGNATURE {
            return Err(NoteError::Signature(format!("{} is not a cosigner's key", key.name)));
        }
        let signature =
            self.signatures.iter().find(|s| s.name == key.name && s.id == key.id).ok_or_else(
                || NoteError::Signature(format!("no cosignature by {}+{:08x}", key.name, key.id)),
            )?;
        let bytes = &signature.signature;
        if bytes.len() != 8 + 64 {
            return Err(NoteError::Signature(format!(
                "the cosignature by {} is not a timestamp and an Ed25519 signature",
                key.name
            )));
        }
        let timestamp = u64::from_be_bytes(bytes[..8].try_into().expect("invariant: 8 bytes"));
        let message = format!("cosignature/v1\ntime {timestamp}\n{}", self.text);
        if !key.verifies(&message, &bytes[8..]) {
            return Err(NoteError::Signature(format!(
                "the cosignature by {} does not verify",
                key.name
            )));
        }
        Ok(timestamp)
    }

    /// The note as text: the text, a blank line, the signature lines.
    pub fn to_text(&self) -> String {
        let mut note = format!("{}\n", self.text);
        for s in &self.signatures {
            let mut bytes = s.id.to_be_bytes().to_vec();
            bytes.extend_from_slice(&s.signature);
            note.push_str(&format!("{SIGNATURE_PREFIX}{} {}\n", s.name, encode_base64(&bytes)));
        }
        note
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of c2sp.org/signed-note.
    #[test]
    fn the_specification_example_verifies() {
        let key = VerifierKey::parse(
            "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        )
        .unwrap();
        let note = SignedNote::parse("This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n").unwrap();
        note.verify(&key).unwrap();
        let changed = SignedNote { text: "This is another message.\n".into(), ..note.clone() };
        assert!(changed.verify(&key).is_err());
    }

    #[test]
    fn keys_whose_base64_holds_plus_signs_round_trip() {
        // Half of all keys hold a '+' in their base64; fifty make missing one unthinkable.
        for _ in 0..50 {
            let key = SigningKey::generate("caltrail.example/ledger").unwrap();
            assert_eq!(SigningKey::parse(&key.to_text()).unwrap().verifier(), key.verifier());
            assert_eq!(VerifierKey::parse(&key.verifier().to_text()).unwrap(), key.verifier());
        }
    }

    #[test]
    fn keys_round_trip_and_sign() {
        let key = SigningKey::generate("caltrail.example/ledger").unwrap();
        let again = SigningKey::parse(&key.to_text()).unwrap();
        assert_eq!(again.verifier(), key.verifier());
        let vkey = VerifierKey::parse(&key.verifier().to_text()).unwrap();
        let note = SignedNote::parse(&SignedNote::sign("a\nb\n", &[&key])).unwrap();
        note.verify(&vkey).unwrap();
        let other = SigningKey::generate("caltrail.example/ledger").unwrap();
        assert!(note.verify(&other.verifier()).is_err());
        assert!(SigningKey::generate("bad name").is_err());
        assert!(SigningKey::generate("bad+name").is_err());
    }
}
