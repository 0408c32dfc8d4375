//! Valid-time order (EVENTS.md, "Time"): events apply by `at`, ties by `seq`. A ledger is
//! nearly always in that order already, so instead of sorting every entry the replay finds the
//! few that are not (late records, backdated imports), reads those first, and merges them into
//! the stream of the rest, which is in order.

use caltrail_events::Event;

use crate::fold::Replay;

/// The positions (0-based, ascending) of the entries to take out of `ats`, the `at` of each
/// entry in chain order, so that the rest is in valid-time order: the complement of a longest
/// non-decreasing run of `at`, so as few as possible are taken out. Empty when the entries are
/// already in order, which costs one pass and no allocation.
pub fn out_of_order(ats: &[i64]) -> Vec<usize> {
    if ats.is_sorted() {
        return Vec::new();
    }
    // Patience sorting: `tails[k]` is the position ending the best run of length k + 1 found so
    // far (the one with the smallest last `at`), `previous[i]` the position before `i` in its run.
    // Positions rise along the chain, so a run non-decreasing in `at` is increasing in
    // (`at`, `seq`), and `upper_bound` keeps equal `at`s in one run.
    // Room for the longest run (nearly all of them): no copying as it grows.
    let mut tails: Vec<u32> = Vec::with_capacity(ats.len());
    // The `at` of each tail, beside it: the binary search reads these, not `ats` at random.
    let mut tail_ats: Vec<i64> = Vec::with_capacity(ats.len());
    let mut previous: Vec<u32> = vec![u32::MAX; ats.len()];
    for (i, &at) in ats.iter().enumerate() {
        // Nearly every entry extends the longest run: checked first, without a search.
        let k = if tail_ats.last().is_none_or(|&last| last <= at) {
            tails.len()
        } else {
            tail_ats.partition_point(|&t| t <= at)
        };
        if k > 0 {
            previous[i] = tails[k - 1];
        }
        let i = u32::try_from(i).expect("invariant: a replay holds fewer than 2^32 entries");
        if k == tails.len() {
            tails.push(i);
            tail_ats.push(at);
        } else {
            tails[k] = i;
            tail_ats[k] = at;
        }
    }
    let mut keep = vec![false; ats.len()];
    let mut at = tails.last().copied().unwrap_or(u32::MAX);
    while at != u32::MAX {
        keep[at as usize] = true;
        at = previous[at as usize];
    }
    keep.iter().enumerate().filter(|(_, kept)| !**kept).map(|(i, _)| i).collect()
}

/// One entry for `Replay::fold_all`.
pub struct KnownEntry<'a> {
    /// Its sequence number.
    pub seq: u64,
    /// When it was recorded.
    pub recorded_at: caltrail_events::Timestamp,
    /// Its hash, hex.
    pub hash: &'a str,
    /// Its event.
    pub event: &'a Event,
}

impl Replay {
    /// Folds every given entry (the known ones, in chain order) in valid-time order and
    /// finishes: for entries already in memory. A ledger's are streamed by the caller with
    /// `know`, `out_of_order` and `apply` instead, so they are never all held at once.
    pub fn fold_all<'a>(mut self, entries: impl IntoIterator<Item = KnownEntry<'a>>) -> Replay {
        self.fold(entries);
        self.finish()
    }

    /// Folds these entries into the state without finishing it: `know` for each, then
    /// `apply` in valid-time order. Entries after a snapshot's are folded this way on top of it.
    pub fn fold<'a>(&mut self, entries: impl IntoIterator<Item = KnownEntry<'a>>) {
        let mut entries: Vec<KnownEntry<'a>> = entries.into_iter().collect();
        for entry in &entries {
            self.know(entry.event);
        }
        entries.sort_by_key(|e| (e.event.at, e.seq));
        for entry in &entries {
            self.apply(entry.seq, entry.recorded_at, entry.hash, entry.event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::out_of_order;

    #[test]
    fn entries_in_order_take_nothing_out() {
        assert!(out_of_order(&[]).is_empty());
        assert!(out_of_order(&[1, 1, 2, 5, 5, 9]).is_empty());
    }

    #[test]
    fn a_late_record_is_taken_out_alone() {
        // A removal done on day 3, recorded after day 10's events.
        assert_eq!(out_of_order(&[1, 2, 4, 10, 11, 3, 12]), [5]);
    }

    #[test]
    fn a_typo_far_in_the_future_is_taken_out_not_everything_after_it() {
        assert_eq!(out_of_order(&[1, 2, 9_999, 3, 4, 5, 6]), [2]);
    }

    #[test]
    fn a_backdated_import_is_taken_out() {
        assert_eq!(out_of_order(&[10, 11, 12, 1, 2, 3, 4, 5]), [0, 1, 2]);
    }

    #[test]
    fn what_is_left_is_in_order_and_as_long_as_can_be() {
        let mut state = 7u64;
        for _ in 0..200 {
            let ats: Vec<i64> = (0..60)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state % 20) as i64
                })
                .collect();
            let out = out_of_order(&ats);
            let kept: Vec<i64> =
                ats.iter().enumerate().filter(|(i, _)| !out.contains(i)).map(|(_, a)| *a).collect();
            assert!(kept.is_sorted());
            // No longer non-decreasing run exists: checked against the quadratic method.
            let mut best = vec![1usize; ats.len()];
            for i in 0..ats.len() {
                for j in 0..i {
                    if ats[j] <= ats[i] {
                        best[i] = best[i].max(best[j] + 1);
                    }
                }
            }
            assert_eq!(kept.len(), best.iter().copied().max().unwrap_or(0));
        }
    }
}
