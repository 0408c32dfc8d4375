//! The Merkle tree of RFC 6962 (section 2.1), as RFC 9162 (section 2.1) restates it: SHA-256,
//! leaves hashed as `H(0x00 || entry)`, nodes as `H(0x01 || left || right)`, a tree of `n`
//! leaves split at the largest power of two below `n`. Proofs are built over any source of
//! subtree hashes (`Subtrees`) and checked with the verification algorithms of RFC 9162,
//! sections 2.1.3.2 and 2.1.4.2.

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The hash of a leaf: `SHA-256(0x00 || entry bytes)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(entry);
    hasher.finalize().into()
}

/// The hash of an inner node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of the empty tree: the hash of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two smaller than `n` (`n` > 1): where a tree of `n` leaves splits.
pub fn split(n: u64) -> u64 {
    debug_assert!(n > 1);
    1 << (n - 1).ilog2()
}

/// Where a tree's subtree hashes come from: stored nodes, entries read and hashed, or leaf
/// hashes in memory.
pub trait Subtrees {
    /// Why a subtree could not be had.
    type Error;
    /// `MTH(D[start:end])`, the root of the leaves `start..end` (`end` > `start`).
    fn subtree(&mut self, start: u64, end: u64) -> Result<Hash, Self::Error>;
}

/// Leaf hashes in memory.
impl Subtrees for &[Hash] {
    type Error = std::convert::Infallible;
    fn subtree(&mut self, start: u64, end: u64) -> Result<Hash, Self::Error> {
        Ok(root_of_leaves(&self[start as usize..end as usize]))
    }
}

/// `MTH` of leaf hashes, by the recursive definition.
pub fn root_of_leaves(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&root_of_leaves(&leaves[..k]), &root_of_leaves(&leaves[k..]))
        }
    }
}

/// The root of a tree of `size` leaves.
pub fn root<S: Subtrees>(source: &mut S, size: u64) -> Result<Hash, S::Error> {
    if size == 0 { Ok(empty_root()) } else { source.subtree(0, size) }
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves (`PATH(m, D[n])`), from the
/// leaf's sibling up to the root's child. The caller checks `index < size`.
pub fn inclusion_proof<S: Subtrees>(
    source: &mut S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, S::Error> {
    let mut proof = Vec::new();
    path(source, index, 0, size, &mut proof)?;
    Ok(proof)
}

fn path<S: Subtrees>(
    source: &mut S,
    m: u64,
    start: u64,
    end: u64,
    proof: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    let n = end - start;
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(source, m, start, start + k, proof)?;
        proof.push(source.subtree(start + k, end)?);
    } else {
        path(source, m - k, start + k, end, proof)?;
        proof.push(source.subtree(start, start + k)?);
    }
    Ok(())
}

/// The consistency proof from the tree of `old` leaves to the tree of `new` leaves
/// (`PROOF(m, D[n])`), for 0 < `old` <= `new`; empty when they are equal.
pub fn consistency_proof<S: Subtrees>(
    source: &mut S,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, S::Error> {
    let mut proof = Vec::new();
    if old > 0 && old < new {
        subproof(source, old, 0, new, true, &mut proof)?;
    }
    Ok(proof)
}

fn subproof<S: Subtrees>(
    source: &mut S,
    m: u64,
    start: u64,
    end: u64,
    whole: bool,
    proof: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    let n = end - start;
    if m == n {
        if !whole {
            proof.push(source.subtree(start, end)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(source, m, start, start + k, whole, proof)?;
        proof.push(source.subtree(start + k, end)?);
    } else {
        subproof(source, m - k, start + k, end, false, proof)?;
        proof.push(source.subtree(start, start + k)?);
    }
    Ok(())
}

/// Checks an inclusion proof (RFC 9162, 2.1.3.2): the leaf hash must be computed by the caller
/// from the entry, never taken from a proof.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), String> {
    if index >= size {
        return Err(format!("index {index} is not below the tree size {size}"));
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err("the inclusion proof is longer than the tree allows".into());
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err("the inclusion proof is shorter than the tree requires".into());
    }
    if &r != root {
        return Err("the inclusion proof does not lead to the checkpoint's root hash".into());
    }
    Ok(())
}

/// Checks a consistency proof (RFC 9162, 2.1.4.2) from the tree of `old` leaves with root
/// `old_root` to the tree of `new` leaves with root `new_root`.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), String> {
    if old > new {
        return Err(format!("the old tree ({old}) is larger than the new one ({new})"));
    }
    if old == new {
        return if proof.is_empty() && old_root == new_root {
            Ok(())
        } else if !proof.is_empty() {
            Err("a consistency proof between equal sizes must be empty".into())
        } else {
            Err("the two checkpoints have the same size but different root hashes".into())
        };
    }
    if old == 0 {
        return if proof.is_empty() {
            Ok(())
        } else {
            Err("a consistency proof from the empty tree must be empty".into())
        };
    }
    let mut proof: Vec<Hash> = proof.to_vec();
    if proof.is_empty() {
        return Err("the consistency proof is empty".into());
    }
    if old.is_power_of_two() {
        proof.insert(0, *old_root);
    }
    let (mut fn_, mut sn) = (old - 1, new - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (proof[0], proof[0]);
    for c in &proof[1..] {
        if sn == 0 {
            return Err("the consistency proof is longer than the trees allow".into());
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err("the consistency proof is shorter than the trees require".into());
    }
    if &fr != old_root {
        return Err("the consistency proof does not lead to the old checkpoint's root hash".into());
    }
    if &sr != new_root {
        return Err("the consistency proof does not lead to the new checkpoint's root hash".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(hash: &Hash) -> String {
        hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The leaves of the RFC 6962 test data (Certificate Transparency's merkle_tree_test).
    fn rfc6962_leaves() -> Vec<Vec<u8>> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|h| {
            (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect()
        })
        .collect()
    }

    #[test]
    fn roots_match_the_rfc6962_test_vectors() {
        let leaves: Vec<Hash> = rfc6962_leaves().iter().map(|l| leaf_hash(l)).collect();
        let expected = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        assert_eq!(
            hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        for (n, want) in expected.iter().enumerate() {
            assert_eq!(
                hex(&root(&mut &leaves[..], n as u64 + 1).unwrap()),
                *want,
                "size {}",
                n + 1
            );
        }
    }

    #[test]
    fn proofs_of_every_leaf_and_pair_verify_and_tampered_ones_do_not() {
        let leaves: Vec<Hash> = (0..70u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for size in 1..=70u64 {
            let r = root(&mut &leaves[..], size).unwrap();
            for index in 0..size {
                let proof = inclusion_proof(&mut &leaves[..], index, size).unwrap();
                verify_inclusion(&leaves[index as usize], index, size, &proof, &r).unwrap();
                if size > 1 {
                    let other = (index + 1) % size;
                    assert!(
                        verify_inclusion(&leaves[index as usize], other, size, &proof, &r).is_err()
                    );
                }
                assert!(
                    verify_inclusion(
                        &leaves[index as usize],
                        index,
                        size,
                        &proof[..proof.len().saturating_sub(1)],
                        &r
                    )
                    .is_err()
                        || proof.is_empty()
                );
            }
            for old in 1..=size {
                let old_root = root(&mut &leaves[..], old).unwrap();
                let proof = consistency_proof(&mut &leaves[..], old, size).unwrap();
                verify_consistency(old, size, &old_root, &r, &proof).unwrap();
                if old < size {
                    let wrong = leaf_hash(b"not the old tree");
                    assert!(verify_consistency(old, size, &wrong, &r, &proof).is_err());
                }
            }
        }
    }
}
