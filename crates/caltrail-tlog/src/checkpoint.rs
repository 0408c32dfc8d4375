//! Checkpoints (c2sp.org/tlog-checkpoint: origin, tree size, base64 root hash, as the text of a
//! signed note), inclusion proofs (c2sp.org/tlog-proof@v1) and the consistency proof of a
//! tlog-witness `add-checkpoint` body (`old N`, the hashes, a blank line, the checkpoint).

use crate::merkle::Hash;
use crate::note::{NoteError, SignedNote, check_name, decode_base64, encode_base64};

/// The first line of an inclusion proof bundle.
pub const PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// A tree head as a checkpoint's note text says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name, the note's first line.
    pub origin: String,
    /// How many entries the tree holds.
    pub size: u64,
    /// The tree's root hash.
    pub root: Hash,
}

impl Checkpoint {
    /// The note text: three lines, each ending in a newline.
    pub fn to_text(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, encode_base64(&self.root))
    }

    /// Reads a checkpoint's note text. Extension lines are refused: caltrail writes none, and
    /// they are not auditable.
    pub fn parse_text(text: &str) -> Result<Checkpoint, NoteError> {
        let bad = |why: String| NoteError::Format(format!("not a checkpoint: {why}"));
        let lines: Vec<&str> = text.strip_suffix('\n').unwrap_or(text).split('\n').collect();
        let [origin, size, root] = lines[..] else {
            return Err(bad(format!("{} lines where a checkpoint has 3", lines.len())));
        };
        check_name(origin).map_err(|m| bad(format!("its origin: {m}")))?;
        let canonical = size == "0" || (!size.starts_with('0') && !size.is_empty());
        let size_value = size
            .parse::<u64>()
            .ok()
            .filter(|_| canonical && size.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                bad(format!("the tree size {size:?} is not a decimal without leading zeroes"))
            })?;
        let root = decode_base64(root)
            .and_then(|b| Hash::try_from(b.as_slice()).ok())
            .ok_or_else(|| bad("the root hash is not 32 bytes in canonical base64".into()))?;
        Ok(Checkpoint { origin: origin.to_owned(), size: size_value, root })
    }

    /// A signed note read as a checkpoint (its signatures are not checked here).
    pub fn from_note(note: &SignedNote) -> Result<Checkpoint, NoteError> {
        Checkpoint::parse_text(&note.text)
    }
}

fn hash_lines(proof: &[Hash]) -> String {
    proof.iter().map(|h| format!("{}\n", encode_base64(h))).collect()
}

fn parse_hash(line: &str) -> Result<Hash, NoteError> {
    decode_base64(line).and_then(|b| Hash::try_from(b.as_slice()).ok()).ok_or_else(|| {
        NoteError::Format(format!("{line:?} is not a 32-byte hash in canonical base64"))
    })
}

/// A decimal without leading zeroes, as the formats write counts.
fn parse_count(text: &str, what: &str) -> Result<u64, NoteError> {
    let canonical = text == "0" || (!text.is_empty() && !text.starts_with('0'));
    text.parse::<u64>()
        .ok()
        .filter(|_| canonical && text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            NoteError::Format(format!(
                "the {what} {text:?} is not a decimal without leading zeroes"
            ))
        })
}

/// An inclusion proof bundle (c2sp.org/tlog-proof@v1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionBundle {
    /// The entry's stored bytes. Not authenticated: the verifier hashes them itself.
    pub extra: Option<Vec<u8>>,
    /// The leaf's index, `seq - 1`.
    pub index: u64,
    /// The inclusion proof, leaf to root.
    pub proof: Vec<Hash>,
    /// The signed checkpoint, verbatim.
    pub checkpoint: String,
}

impl InclusionBundle {
    /// The bundle as c2sp.org/tlog-proof text.
    pub fn to_text(&self) -> String {
        let extra = self
            .extra
            .as_ref()
            .map_or_else(String::new, |e| format!("extra {}\n", encode_base64(e)));
        format!(
            "{PROOF_HEADER}\n{extra}index {}\n{}\n{}",
            self.index,
            hash_lines(&self.proof),
            self.checkpoint
        )
    }

    /// Parses a tlog-proof bundle strictly.
    pub fn parse(text: &str) -> Result<InclusionBundle, NoteError> {
        let bad = |why: &str| NoteError::Format(format!("not a tlog-proof: {why}"));
        let (head, checkpoint) =
            text.split_once("\n\n").ok_or_else(|| bad("no blank line before the checkpoint"))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(PROOF_HEADER) {
            return Err(bad("the first line is not c2sp.org/tlog-proof@v1"));
        }
        let mut line = lines.next().ok_or_else(|| bad("no index line"))?;
        let mut extra = None;
        if let Some(data) = line.strip_prefix("extra ") {
            extra = Some(
                decode_base64(data).ok_or_else(|| bad("the extra data is not canonical base64"))?,
            );
            line = lines.next().ok_or_else(|| bad("no index line"))?;
        }
        let index =
            parse_count(line.strip_prefix("index ").ok_or_else(|| bad("no index line"))?, "index")?;
        let proof = lines.map(parse_hash).collect::<Result<Vec<_>, _>>()?;
        Ok(InclusionBundle { extra, index, proof, checkpoint: checkpoint.to_owned() })
    }
}

/// A consistency proof as a tlog-witness `add-checkpoint` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyBundle {
    /// The size of the older tree.
    pub old: u64,
    /// The consistency proof.
    pub proof: Vec<Hash>,
    /// The newer signed checkpoint.
    pub checkpoint: String,
}

impl ConsistencyBundle {
    /// The body as tlog-witness's add-checkpoint text.
    pub fn to_text(&self) -> String {
        format!("old {}\n{}\n{}", self.old, hash_lines(&self.proof), self.checkpoint)
    }

    /// Parses an add-checkpoint body strictly.
    pub fn parse(text: &str) -> Result<ConsistencyBundle, NoteError> {
        let bad = |why: &str| NoteError::Format(format!("not a consistency proof: {why}"));
        let (head, checkpoint) =
            text.split_once("\n\n").ok_or_else(|| bad("no blank line before the checkpoint"))?;
        let mut lines = head.split('\n');
        let old =
            lines.next().and_then(|l| l.strip_prefix("old ")).ok_or_else(|| bad("no old line"))?;
        let old = parse_count(old, "old size")?;
        let proof = lines.map(parse_hash).collect::<Result<Vec<_>, _>>()?;
        Ok(ConsistencyBundle { old, proof, checkpoint: checkpoint.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_and_bundles_round_trip_and_parse_strictly() {
        let checkpoint =
            Checkpoint { origin: "caltrail.example/ledger".into(), size: 12, root: [7; 32] };
        assert_eq!(Checkpoint::parse_text(&checkpoint.to_text()).unwrap(), checkpoint);
        for bad in [
            "caltrail example\n12\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
            "caltrail+example\n12\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
            "caltrail.example\n012\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
            "caltrail.example\n12\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwd=\n",
            "caltrail.example\n12\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\next\n",
        ] {
            assert!(Checkpoint::parse_text(bad).is_err(), "{bad:?}");
        }
        let bundle = InclusionBundle {
            extra: Some(vec![1, 2, 3]),
            index: 4,
            proof: vec![[1; 32], [2; 32]],
            checkpoint: "note\n".into(),
        };
        assert_eq!(InclusionBundle::parse(&bundle.to_text()).unwrap(), bundle);
        let bundle =
            ConsistencyBundle { old: 3, proof: vec![[9; 32]], checkpoint: "note\n".into() };
        assert_eq!(ConsistencyBundle::parse(&bundle.to_text()).unwrap(), bundle);
    }
}
