//! `caltrail-bench`: the measurements `bench/run` takes beside caltrail's own commands. Each
//! prints one line, `<name> <rows> <seconds>`. Not for users: the figures only mean something
//! next to the ones of `caltrail` on the same rows.

#![forbid(unsafe_code)]

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use caltrail_events::Timestamp;
use caltrail_replay::{AsOf, Replay};
use caltrail_store::Ledger;

mod baseline;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| {
        args.get(i).map(Path::new).context("usage: caltrail-bench (insert LEDGER NEW_DB | scan LEDGER | scan-all-columns LEDGER | decode LEDGER | replay LEDGER | chain [LEDGER] | prove LEDGER SEQ)")
    };
    match args.first().map(String::as_str) {
        Some("insert") => {
            let (rows, schema) = baseline::read_rows(arg(1)?)?;
            let took = baseline::plain_insert(arg(2)?, &rows, &schema)?;
            println!("plain_insert {} {:.3}", rows.len(), took.as_secs_f64());
        }
        Some("scan") => {
            let (n, took) = baseline::plain_scan(arg(1)?)?;
            println!("plain_scan {n} {:.3}", took.as_secs_f64());
        }
        Some("scan-all-columns") => {
            let (n, took) = baseline::plain_scan_all_columns(arg(1)?)?;
            println!("plain_scan_all_columns {n} {:.3}", took.as_secs_f64());
        }
        Some("decode") => {
            let ledger = Ledger::open_existing(arg(1)?)?;
            let started = Instant::now();
            let mut n = 0u64;
            ledger.for_each_entry(None, |e| {
                n += 1;
                std::hint::black_box(e);
                Ok(())
            })?;
            println!("decode {n} {:.3}", started.elapsed().as_secs_f64());
        }
        Some("replay") => {
            let ledger = Ledger::open_existing(arg(1)?)?;
            let started = Instant::now();
            let mut replay = Replay::new(AsOf::Latest, Timestamp::now(), false);
            ledger.for_each_entry(None, |e| {
                replay.apply(e.entry.seq, e.entry.recorded_at, "", &e.entry.event);
                Ok(())
            })?;
            let replay = replay.finish();
            println!("replay {} {:.3}", replay.n_applied, started.elapsed().as_secs_f64());
        }
        Some("chain") => {
            // The chain hash of every entry from the hash before it, as `verify` computes them:
            // one at a time with the blake3 crate, then sixteen at a time on AVX-512 lanes or
            // eight on AVX2 lanes (`chain_hashes`). With a ledger, its entries once; without, 1,024 entries of 400
            // bytes, 1,000 times over.
            let owned: Vec<(caltrail_store::EntryHash, Vec<u8>)> = if let Some(ledger) = args.get(1)
            {
                let (rows, _) = baseline::read_rows(Path::new(ledger))?;
                let mut prev = caltrail_store::EntryHash::GENESIS;
                rows.iter()
                    .map(|row| {
                        let pair = (prev, row.body().to_vec());
                        prev = caltrail_store::EntryHash::from_slice(row.hash())
                            .unwrap_or(caltrail_store::EntryHash::GENESIS);
                        pair
                    })
                    .collect()
            } else {
                let mut rng = caltrail_generate::Rng::new(400);
                (0..1024)
                    .map(|_| {
                        let bytes = (0..400).map(|_| rng.next_u64() as u8).collect();
                        (caltrail_store::EntryHash::GENESIS, bytes)
                    })
                    .collect()
            };
            let rounds = if args.get(1).is_some() { 1 } else { 1000 };
            let pairs: Vec<(caltrail_store::EntryHash, &[u8])> =
                owned.iter().map(|(prev, bytes)| (*prev, bytes.as_slice())).collect();
            let started = Instant::now();
            let mut one_at_a_time = Vec::new();
            for _ in 0..rounds {
                one_at_a_time = pairs
                    .iter()
                    .map(|(prev, bytes)| caltrail_store::EntryHash::chain(prev, bytes))
                    .collect();
            }
            let reference = started.elapsed();
            let started = Instant::now();
            let mut lanes = Vec::new();
            for _ in 0..rounds {
                lanes = caltrail_store::chain_hashes(std::hint::black_box(&pairs));
            }
            let laned = started.elapsed();
            if lanes != one_at_a_time {
                bail!("the lanes and the reference disagree");
            }
            let n = pairs.len() * rounds;
            println!("chain_reference {n} {:.3}", reference.as_secs_f64());
            println!("chain_lanes {n} {:.3}", laned.as_secs_f64());
        }
        Some("prove") => {
            // What `caltrail prove --event` does once the process is up: load the stored tiles,
            // read the entry's bytes, and compute the inclusion proof against the whole tree.
            let ledger = Ledger::open_existing(arg(1)?)?;
            let seq: u64 = args.get(2).context("prove LEDGER SEQ")?.parse()?;
            let size = ledger.head()?.n_events;
            let started = Instant::now();
            let mut tree = ledger.tree()?;
            let loaded = started.elapsed();
            let bytes = ledger.entry_bytes(seq)?.context("no such entry")?;
            let proof = caltrail_tlog::merkle::inclusion_proof(&mut tree, seq - 1, size)?;
            let took = started.elapsed();
            std::hint::black_box((bytes, &proof));
            println!("prove_tiles_loaded {size} {:.6}", loaded.as_secs_f64());
            println!("prove {} {:.6}", proof.len(), took.as_secs_f64());
        }
        _ => bail!(
            "usage: caltrail-bench (insert LEDGER NEW_DB | scan LEDGER | scan-all-columns LEDGER | decode LEDGER | replay LEDGER | chain [LEDGER] | prove LEDGER SEQ)"
        ),
    }
    Ok(())
}
