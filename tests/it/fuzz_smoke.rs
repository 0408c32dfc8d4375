//! A short run of what the fuzz targets check, on their seed corpus and on random mutations of
//! it: the full fuzzing is `cargo fuzz` (see RELIABILITY.md), which needs its own toolchain setup.

#[path = "../../fuzz/src/checks.rs"]
mod checks;

use crate::root;
use crate::tamper_campaign::Rng;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(root().join("fuzz/corpus").join(target))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 5, "the {target} corpus is missing");
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// Flips, drops, duplicates or inserts a few bytes.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..rng.range(1, 4) {
        if data.is_empty() {
            data.push(rng.next_u64() as u8);
            continue;
        }
        let at = rng.range(0, data.len() as u64 - 1) as usize;
        match rng.range(0, 4) {
            0 => data[at] ^= 1 << rng.range(0, 7),
            1 => {
                data.remove(at);
            }
            2 => data.insert(at, data[at]),
            3 => data.insert(at, b"{}[]\",:0-9.eZ\\ \n\x00\xff"[rng.range(0, 17) as usize]),
            _ => data.truncate(at),
        }
    }
    data
}

fn smoke(target: &str, check: fn(&[u8]), mutations: usize) {
    let seeds = corpus(target);
    let mut rng = Rng::new(target.len() as u64 * 7919);
    for seed in &seeds {
        check(seed);
    }
    for i in 0..mutations {
        let data = mutate(&seeds[i % seeds.len()], &mut rng);
        check(&data);
    }
}

#[test]
fn event_line() {
    smoke("event_line", checks::event_line, 20_000);
}

#[test]
fn entry_bytes() {
    smoke("entry_bytes", checks::entry_bytes, 20_000);
}

#[test]
fn wmi_export() {
    smoke("wmi_export", checks::wmi_export, 5_000);
}
