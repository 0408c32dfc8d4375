//! Work on a ledger's entries spread over the machine's cores while one thread reads SQLite (a
//! connection is used by one thread) and results come back in chain order.

use std::sync::mpsc;

/// Rows per chunk handed to a worker: large enough that passing it costs little, small enough
/// that few are held at once.
pub(crate) const CHUNK_ROWS: usize = 1024;

/// Chunks in flight between the producer and the consumer, over all workers; also what a
/// producer on a thread of its own may read ahead (see `Ledger::visit_entries`).
///
/// The consumer (a replay's fold) is the slowest stage, and shares the cores with the reader
/// and the workers: with two chunks per worker, they filled their queues within moments and
/// waited on the fold, which then ran alone on one core while the other idled (11 to 15% of
/// the machine idle through a replay of 4.5M entries, by `vmstat`). With 32 per worker on two
/// cores they work ahead while the fold runs, and the machine idles 1 to 5%. At 1024 entries a
/// chunk this holds some 64K entries, decoded, ahead of the fold.
pub(crate) const CHUNKS_IN_FLIGHT: usize = 64;

/// Calls `produce` for chunks until it gives `None`, runs `work` on each chunk on worker
/// threads, and calls `consume` with the results in the order the chunks were produced.
/// Results are dropped on the workers too, after `consume`: freeing millions of decoded events
/// is work the consuming thread, which folds them, need not do.
/// Chunks go to the workers in turn and come back in the same turn, so no reordering is
/// needed; at most `CHUNKS_IN_FLIGHT` are in flight (two per worker at least). The first error
/// stops everything.
pub(crate) fn in_order<C: Send, R: Send, E>(
    mut produce: impl FnMut() -> Result<Option<C>, E>,
    work: impl Fn(C) -> R + Sync,
    mut consume: impl FnMut(&mut R) -> Result<(), E>,
) -> Result<(), E> {
    let n_workers =
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get).clamp(1, 8);
    let per_worker = (CHUNKS_IN_FLIGHT / n_workers).max(2);
    let work = &work;
    std::thread::scope(|scope| {
        let mut to_workers = Vec::with_capacity(n_workers);
        let mut from_workers = Vec::with_capacity(n_workers);
        for _ in 0..n_workers {
            let (chunk_tx, chunk_rx) = mpsc::sync_channel::<(C, Vec<R>)>(per_worker);
            let (result_tx, result_rx) = mpsc::sync_channel::<R>(per_worker);
            let worker = move || {
                for (chunk, consumed) in chunk_rx {
                    drop(consumed);
                    if result_tx.send(work(chunk)).is_err() {
                        break;
                    }
                }
            };
            // Named, so that a profile tells the workers from the reading thread.
            std::thread::Builder::new()
                .name("caltrail-worker".to_owned())
                .spawn_scoped(scope, worker)
                .expect("invariant: the system can start a thread");
            to_workers.push(chunk_tx);
            from_workers.push(result_rx);
        }
        let (mut sent, mut received) = (0usize, 0usize);
        let mut consumed: Vec<R> = Vec::new();
        let mut producing = true;
        loop {
            if producing && sent - received < per_worker * n_workers {
                match produce()? {
                    Some(chunk) => {
                        // Sending fails only if the worker panicked; `recv` below reports it.
                        let _ = to_workers[sent % n_workers]
                            .send((chunk, std::mem::take(&mut consumed)));
                        sent += 1;
                    }
                    None => producing = false,
                }
                continue;
            }
            if received == sent {
                return Ok(());
            }
            let mut result = from_workers[received % n_workers]
                .recv()
                .expect("invariant: a worker answers every chunk unless it panicked");
            received += 1;
            consume(&mut result)?;
            consumed.push(result);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_order() {
        let mut next = 0u32;
        let mut seen = Vec::new();
        in_order(
            || {
                next += 1;
                Ok::<_, ()>((next <= 100).then_some(next))
            },
            |n| {
                // Uneven work, so that workers finish out of turn.
                std::thread::sleep(std::time::Duration::from_micros(u64::from(n % 7) * 50));
                n * 2
            },
            |n| {
                seen.push(*n);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, (1..=100).map(|n| n * 2).collect::<Vec<_>>());
    }

    #[test]
    fn the_producer_gets_ahead_by_the_chunks_in_flight_and_no_more() {
        let produced = std::cell::Cell::new(0usize);
        let mut most_ahead = 0;
        let mut n_consumed = 0;
        in_order(
            || {
                produced.set(produced.get() + 1);
                Ok::<_, ()>((produced.get() <= 1000).then_some(produced.get()))
            },
            |n| n,
            |n| {
                n_consumed += 1;
                assert_eq!(*n, n_consumed);
                // The chunk being consumed is still in flight.
                most_ahead = most_ahead.max(produced.get() - n_consumed + 1);
                Ok(())
            },
        )
        .unwrap();
        let n_workers =
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get).clamp(1, 8);
        assert_eq!(n_consumed, 1000);
        // A producer as fast as this one keeps the queues full: exactly the limit is ahead.
        assert_eq!(most_ahead, (CHUNKS_IN_FLIGHT / n_workers).max(2) * n_workers);
    }

    #[test]
    fn the_first_error_stops_the_walk() {
        let mut next = 0u32;
        let mut consumed = 0;
        let result = in_order(
            || {
                next += 1;
                Ok((next <= 100).then_some(next))
            },
            |n| n,
            |n| {
                consumed += 1;
                if *n == 10 { Err(*n) } else { Ok(()) }
            },
        );
        assert_eq!((result, consumed), (Err(10), 10));
    }
}
