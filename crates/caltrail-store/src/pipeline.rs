//! Work on a ledger's entries spread over the machine's cores while one thread reads SQLite (a
//! connection is used by one thread) and results come back in chain order.

use std::sync::mpsc;

/// Rows per chunk handed to a worker: large enough that passing it costs little, small enough
/// that few are held at once.
pub(crate) const CHUNK_ROWS: usize = 1024;

/// Calls `produce` for chunks until it gives `None`, runs `work` on each chunk on worker
/// threads, and calls `consume` with the results in the order the chunks were produced.
/// Results are dropped on the workers too, after `consume`: freeing millions of decoded events
/// is work the consuming thread, which folds them, need not do.
/// Chunks go to the workers in turn and come back in the same turn, so no reordering is
/// needed; at most two per worker are in flight. The first error stops everything.
pub(crate) fn in_order<C: Send, R: Send, E>(
    mut produce: impl FnMut() -> Result<Option<C>, E>,
    work: impl Fn(C) -> R + Sync,
    mut consume: impl FnMut(&mut R) -> Result<(), E>,
) -> Result<(), E> {
    let n_workers =
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get).clamp(1, 8);
    let work = &work;
    std::thread::scope(|scope| {
        let mut to_workers = Vec::with_capacity(n_workers);
        let mut from_workers = Vec::with_capacity(n_workers);
        for _ in 0..n_workers {
            let (chunk_tx, chunk_rx) = mpsc::sync_channel::<(C, Vec<R>)>(2);
            let (result_tx, result_rx) = mpsc::sync_channel::<R>(2);
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
            if producing && sent - received < 2 * n_workers {
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
