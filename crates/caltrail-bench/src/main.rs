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
        args.get(i).map(Path::new).context("usage: caltrail-bench (insert LEDGER NEW_DB | scan LEDGER | scan-all-columns LEDGER | decode LEDGER | replay LEDGER | lanes LEDGER)")
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
        Some("lanes") => {
            // The chain hash of every entry from the hash stored before it, as `verify` computes
            // them: one at a time with the blake3 crate, then eight at a time on AVX2 lanes.
            let (rows, _) = baseline::read_rows(arg(1)?)?;
            let mut prev = caltrail_store::EntryHash::GENESIS;
            let pairs: Vec<(caltrail_store::EntryHash, &[u8])> = rows
                .iter()
                .map(|row| {
                    let pair = (prev, row.body());
                    prev = caltrail_store::EntryHash::from_slice(row.hash())
                        .unwrap_or(caltrail_store::EntryHash::GENESIS);
                    pair
                })
                .collect();
            let started = Instant::now();
            let one_at_a_time: Vec<_> = pairs
                .iter()
                .map(|(prev, bytes)| caltrail_store::EntryHash::chain(prev, bytes))
                .collect();
            let reference = started.elapsed();
            let started = Instant::now();
            let lanes = caltrail_store::chain_hashes(&pairs);
            let laned = started.elapsed();
            if lanes != one_at_a_time {
                bail!("the lanes and the reference disagree");
            }
            println!("chain_reference {} {:.3}", pairs.len(), reference.as_secs_f64());
            println!("chain_lanes {} {:.3}", pairs.len(), laned.as_secs_f64());
        }
        _ => bail!(
            "usage: caltrail-bench (insert LEDGER NEW_DB | scan LEDGER | scan-all-columns LEDGER | decode LEDGER | replay LEDGER | lanes LEDGER)"
        ),
    }
    Ok(())
}
