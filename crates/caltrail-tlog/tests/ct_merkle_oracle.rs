//! Our tree against `ct-merkle`, another implementation of RFC 6962: the same roots, and each
//! side's inclusion and consistency proofs accepted by the other's verifier.

use caltrail_tlog::merkle::{self, Hash};
use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{ConsistencyProof, InclusionProof};
use proptest::prelude::*;
use sha2::Sha256;

fn trees(size: usize, seed: u8) -> (MemoryBackedTree<Sha256, Vec<u8>>, Vec<Hash>) {
    let mut oracle = MemoryBackedTree::new();
    let mut leaves = Vec::with_capacity(size);
    for i in 0..size {
        let entry = format!("entry {i}, seed {seed}").into_bytes();
        leaves.push(merkle::leaf_hash(&entry));
        oracle.push(entry);
    }
    (oracle, leaves)
}

fn concat(proof: &[Hash]) -> Vec<u8> {
    proof.iter().flatten().copied().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn roots_and_inclusion_proofs_agree(size in 1usize..=2000, seed: u8, pick: u64) {
        let (oracle, leaves) = trees(size, seed);
        let root = merkle::root(&mut &leaves[..], size as u64).unwrap();
        let oracle_root = oracle.root();
        prop_assert_eq!(oracle_root.as_bytes().as_slice(), &root[..]);
        let index = pick % size as u64;
        let ours = merkle::inclusion_proof(&mut &leaves[..], index, size as u64).unwrap();
        let theirs = oracle.prove_inclusion(index as usize);
        prop_assert_eq!(theirs.as_bytes(), &concat(&ours)[..]);
        let entry = oracle.get(index as usize).unwrap();
        prop_assert!(oracle.root().verify_inclusion(entry, index, &InclusionProof::from_bytes(concat(&ours))).is_ok());
    }
}

/// Every old/new pair up to 300 leaves (larger sizes are sampled above for inclusion): each
/// side's consistency proof is the other's and verifies with both verifiers. One oracle grows
/// leaf by leaf; the roots of every size are kept, so each pair costs its proofs alone.
#[test]
fn consistency_proofs_agree_for_every_pair() {
    const MAX: usize = 300;
    let (_, leaves) = trees(MAX, 7);
    let mut oracle: MemoryBackedTree<Sha256, Vec<u8>> = MemoryBackedTree::new();
    let mut oracle_roots = Vec::with_capacity(MAX);
    let mut our_roots: Vec<Hash> = Vec::with_capacity(MAX);
    for new in 1..=MAX {
        oracle.push(format!("entry {}, seed 7", new - 1).into_bytes());
        let new_root = oracle.root();
        let ours_root: Hash = new_root.as_bytes().as_slice().try_into().unwrap();
        assert_eq!(merkle::root(&mut &leaves[..], new as u64).unwrap(), ours_root, "root {new}");
        for old in 1..new {
            let ours = merkle::consistency_proof(&mut &leaves[..], old as u64, new as u64).unwrap();
            merkle::verify_consistency(
                old as u64,
                new as u64,
                &our_roots[old - 1],
                &ours_root,
                &ours,
            )
            .unwrap();
            let theirs = oracle.prove_consistency(new - old);
            assert_eq!(theirs.as_bytes(), &concat(&ours)[..], "{old} -> {new}");
            let proof = ConsistencyProof::try_from_bytes(concat(&ours)).unwrap();
            let old_root: &ct_merkle::RootHash<Sha256> = &oracle_roots[old - 1];
            assert!(new_root.verify_consistency(old_root, &proof).is_ok(), "{old} -> {new}");
        }
        our_roots.push(ours_root);
        oracle_roots.push(new_root);
    }
}
