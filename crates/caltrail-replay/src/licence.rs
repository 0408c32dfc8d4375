//! The facts behind the licence position (RULES.md v2), prepared for the rules to judge: the
//! level of a version, the ceiling of a purchase, when a CAL lapses, and the counts at or above
//! each level as they change over time (holders in use, rights, installed CALs). Counting, not
//! judging: which count is too high is the rules' question.

use std::collections::{BTreeMap, BTreeSet};

use caltrail_events::{CalType, ProductVersion, Program, Timestamp};

use crate::rows::{PurchaseRow, StepRow, UseInterval};
use crate::strings::Sym;

/// The licence level of a version: 2008 TS CALs and 2008 R2 RDS CALs are one level, so
/// `V2008R2` is `V2008`; every other version is its own level.
pub fn level_of(version: ProductVersion) -> ProductVersion {
    match version {
        ProductVersion::V2008R2 => ProductVersion::V2008,
        other => other,
    }
}

/// The levels, oldest first.
pub const LEVELS: &[ProductVersion] = &[
    ProductVersion::V2008,
    ProductVersion::V2012,
    ProductVersion::V2016,
    ProductVersion::V2019,
    ProductVersion::V2022,
    ProductVersion::V2025,
];

/// The table of when each version was made available to volume licensing, as data.
const MADE_AVAILABLE: &str = include_str!("../data/made_available.csv");

/// `(version, made available)`, oldest first, from `data/made_available.csv`.
pub fn made_available() -> Vec<(ProductVersion, Timestamp)> {
    MADE_AVAILABLE
        .lines()
        .filter(|line| !line.starts_with('#') && !line.starts_with("version,") && !line.is_empty())
        .map(|line| {
            let (version, date) =
                line.split_once(',').expect("invariant: the table has two columns");
            let version =
                ProductVersion::parse(version).expect("invariant: the table names versions");
            let date = Timestamp::parse(&format!("{date}T00:00:00Z"))
                .expect("invariant: the table's dates are dates");
            (version, date)
        })
        .collect()
}

/// The newest level a purchase reaches when judged at `judged_at` (RULES.md, "Rights of a
/// purchase"): `rights_through` when given; else the newest of its version, what volume
/// licensing sold on the day (any program but retail), and what was made available while its
/// Software Assurance ran, never past the judged time.
pub fn ceiling(
    purchase: &PurchaseRow,
    judged_at: Timestamp,
    table: &[(ProductVersion, Timestamp)],
) -> ProductVersion {
    if let Some(through) = purchase.rights_through {
        return level_of(through);
    }
    let mut ceiling = level_of(purchase.product_version);
    for &(version, available) in table {
        let sold_then = purchase.program != Program::Retail.as_str() && available <= purchase.at;
        let within_sa = purchase
            .software_assurance_until
            .is_some_and(|until| available <= until && available <= judged_at);
        if sold_then || within_sa {
            ceiling = ceiling.max(level_of(version));
        }
    }
    ceiling
}

/// Days a CAL stays active after an issue that gives no `expires_at` (RULES.md, "Active CAL").
pub fn default_lifetime_days(cal_type: Option<CalType>, temporary: bool) -> i64 {
    match (cal_type, temporary) {
        (_, true) => 90,
        (Some(CalType::PerUser), false) => 60,
        _ => 89,
    }
}

/// A per-user licence stays with its user at least this long after its first issue.
pub const PER_USER_MINIMUM_DAYS: i64 = 90;

/// `t` plus whole days, held at the latest moment chrono can hold.
pub fn add_days(t: Timestamp, days: i64) -> Timestamp {
    Timestamp::from_micros(t.micros().saturating_add(days * 86_400_000_000)).unwrap_or(t)
}

/// A change of a count at or above a level: `delta` from `at` on.
struct Change {
    cal_type: CalType,
    level: ProductVersion,
    at: Timestamp,
    delta: i64,
}

/// Sums changes into step rows: per type and level, the value from each `at` on, one row per
/// moment the value changes.
fn steps(changes: &mut [Change]) -> Vec<StepRow> {
    // Changes at one time become one row whatever their order: an unstable sort, which needs
    // no buffer of half their size beside them (millions in a large estate).
    changes.sort_unstable_by_key(|c| (c.cal_type, c.level, c.at));
    let mut rows: Vec<StepRow> = Vec::new();
    let mut value = 0i64;
    let mut key = None;
    for change in changes.iter() {
        if key != Some((change.cal_type, change.level)) {
            key = Some((change.cal_type, change.level));
            value = 0;
        }
        value += change.delta;
        match rows.last_mut() {
            Some(last)
                if last.cal_type == change.cal_type
                    && last.level == change.level
                    && last.at == change.at =>
            {
                last.value = value;
            }
            _ => rows.push(StepRow {
                cal_type: change.cal_type,
                level: change.level,
                at: change.at,
                value,
            }),
        }
    }
    rows
}

/// A stretch of use as `in_use_steps` sorts them: by holder, then start. Copied out of the
/// table, so that the sort and the passes over it read one array in order.
#[derive(Debug, Clone, Copy)]
struct Held {
    holder: (CalType, Sym),
    start: Timestamp,
    end: Timestamp,
    level: ProductVersion,
}

/// Holders in use at or above each level over time: a holder counts once per CAL type while
/// any of its CALs of that level or newer is active, whatever server or pack it came from.
pub fn in_use_steps(intervals: &[UseInterval]) -> Vec<StepRow> {
    // Each holder's stretches together and by start (the table has a row per stretch of a
    // CAL, millions in a large estate). The union of a holder's stretches does not depend on
    // the order of those with equal starts.
    let mut held: Vec<Held> = Vec::with_capacity(intervals.len());
    held.extend(intervals.iter().filter(|i| i.start < i.end).map(|i| Held {
        holder: (i.cal_type, i.holder),
        start: i.start,
        end: i.end,
        level: i.level,
    }));
    let n_cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    // By one number per stretch, not a tuple of four fields: two million of them in
    // a large estate. Type (a fieldless enum: its discriminant order is its `Ord`), holder,
    // then start.
    sort_in_halves(
        &mut held,
        |h| {
            (u128::from(h.holder.0 as u8) << 96)
                | (u128::from(h.holder.1.raw()) << 64)
                | u128::from(h.start.micros().cast_unsigned() ^ (1 << 63))
        },
        if n_cores > 1 { SORT_IN_HALVES_FROM } else { usize::MAX },
    );
    // `held` is sorted by CAL type first: one run per type, in the order the rows go.
    let runs: Vec<&[Held]> = held.chunk_by(|a, b| a.holder.0 == b.holder.0).collect();
    let shared = SharedLevels::among(&runs);
    // Each distinct list of unions once, split between the cores (each with its own buffers),
    // the longest first.
    let mut jobs: Vec<(usize, ProductVersion)> = shared.jobs();
    jobs.sort_by_key(|&(run, _)| std::cmp::Reverse(runs[run].len()));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let n_workers = n_cores.clamp(1, jobs.len().max(1));
    let work = || {
        let mut buffers = (Vec::new(), Vec::new());
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(&(run, level)) = jobs.get(i) else { break };
            done.push(((run, level), union_steps(runs[run], level, &mut buffers)));
        }
        done
    };
    let mut by_job: BTreeMap<(usize, ProductVersion), Vec<StepRow>> = BTreeMap::new();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (1..n_workers).map(|_| scope.spawn(work)).collect();
        by_job.extend(work());
        // A worker that panicked has left its jobs undone: the same panic, here.
        for worker in workers {
            by_job.extend(worker.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
    });
    // By level, then type: each level's rows are those of the level whose unions it shares,
    // under its own level.
    let mut rows = Vec::new();
    for &level in LEVELS {
        for run in 0..runs.len() {
            let Some(computed) = shared.unions_of(run, level) else { continue };
            // `jobs` lists every list `unions_of` names: a missing one would drop counts.
            let steps = by_job
                .get(&(run, computed))
                .expect("invariant: every list of unions a level shares was worked out");
            rows.extend(steps.iter().map(|row| StepRow { level, ..*row }));
        }
    }
    rows
}

/// Which levels have the same unions. A holder's union at a level is that of its stretches at
/// the level or newer, so two levels with no stretch of the type at a level between them (the
/// lower included) have the same unions: a type whose CALs are all 2022 has one list of unions
/// for 2008 to 2022, and none for 2025. Each distinct list is computed once.
struct SharedLevels {
    /// Per run of a CAL type, the levels its stretches are at, oldest first.
    present: Vec<Vec<ProductVersion>>,
}

impl SharedLevels {
    fn among(runs: &[&[Held]]) -> SharedLevels {
        let present = runs
            .iter()
            .map(|run| {
                let mut levels: Vec<ProductVersion> = Vec::new();
                let mut last = None;
                for held in *run {
                    // Most stretches are at the level of the one before.
                    if last != Some(held.level) && !levels.contains(&held.level) {
                        levels.push(held.level);
                    }
                    last = Some(held.level);
                }
                levels.sort_unstable();
                levels
            })
            .collect();
        SharedLevels { present }
    }

    /// The level whose unions `level`'s are, for the type of run `run`: the lowest level at or
    /// above it that a stretch is at; `None` when no stretch is at it or above (no unions).
    fn unions_of(&self, run: usize, level: ProductVersion) -> Option<ProductVersion> {
        self.present[run].iter().copied().find(|present| *present >= level)
    }

    /// The distinct `(run, level)` lists of unions the levels need.
    fn jobs(&self) -> Vec<(usize, ProductVersion)> {
        let mut jobs: Vec<(usize, ProductVersion)> = (0..self.present.len())
            .flat_map(|run| {
                LEVELS.iter().filter_map(move |&level| Some((run, self.unions_of(run, level)?)))
            })
            .collect();
        jobs.dedup();
        jobs
    }
}

/// How many items a sort needs before `sort_in_halves` splits it between two cores: below,
/// starting a thread costs more than it saves.
const SORT_IN_HALVES_FROM: usize = 1 << 16;

/// Sorts `items` by `key`, at `from_len` items or more on two cores: they are first split
/// around their median, so that each half sorts on its own core and nothing is merged after.
/// (With a snapshot current at 11.3M events, this sort was a fifth of `check`'s time, on one
/// core while the other waited.)
fn sort_in_halves<T: Send, K: Ord>(items: &mut [T], key: impl Fn(&T) -> K + Sync, from_len: usize) {
    if items.len() < from_len.max(2) {
        items.sort_unstable_by_key(key);
        return;
    }
    let middle = items.len() / 2;
    items.select_nth_unstable_by_key(middle, &key);
    let (low, high) = items.split_at_mut(middle);
    let key = &key;
    std::thread::scope(|scope| {
        let high = scope.spawn(move || high.sort_unstable_by_key(key));
        low.sort_unstable_by_key(key);
        // A sort that panicked: the same panic, here.
        high.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
    });
}

/// The step rows of one CAL type's stretches (`run`, sorted by holder then start) at `level`,
/// labelled `level`.
///
/// The moments the holders' unions start and end are two lists of microseconds, sorted apart
/// and walked together: the rows `steps` would give from the same changes (one per moment any
/// union starts or ends, the count after all of them), without sorting millions of changes by
/// a three-part key. `buffers` holds the two lists' room from one call to the next.
fn union_steps(
    run: &[Held],
    level: ProductVersion,
    (starts, ends): &mut (Vec<i64>, Vec<i64>),
) -> Vec<StepRow> {
    let Some(first) = run.first() else { return Vec::new() };
    let cal_type = first.holder.0;
    starts.clear();
    ends.clear();
    // Room for a union per stretch at most, taken once: growing millions of entries by
    // doubling copied them and touched fresh pages for every copy.
    starts.reserve(run.len());
    ends.reserve(run.len());
    for holder in run.chunk_by(|a, b| a.holder == b.holder) {
        unions_at(holder, level, |start, end| {
            starts.push(start.micros());
            ends.push(end.micros());
        });
    }
    starts.sort_unstable();
    ends.sort_unstable();
    let mut rows = Vec::with_capacity(starts.len() + ends.len());
    let (mut next_start, mut next_end, mut value) = (0, 0, 0i64);
    loop {
        let at = match (starts.get(next_start), ends.get(next_end)) {
            (Some(&start), Some(&end)) => start.min(end),
            (Some(&start), None) => start,
            (None, Some(&end)) => end,
            (None, None) => break,
        };
        while starts.get(next_start) == Some(&at) {
            value += 1;
            next_start += 1;
        }
        while ends.get(next_end) == Some(&at) {
            value -= 1;
            next_end += 1;
        }
        let at = Timestamp::from_micros(at)
            .expect("invariant: the microseconds of a timestamp make it again");
        rows.push(StepRow { cal_type, level, at, value });
    }
    rows
}

/// The union of one holder's stretches (sorted by start) at `level` or newer, a stretch at a
/// time, in order: stretches that overlap or touch are one.
fn unions_at(holder: &[Held], level: ProductVersion, mut each: impl FnMut(Timestamp, Timestamp)) {
    let mut open: Option<(Timestamp, Timestamp)> = None;
    for interval in holder.iter().filter(|i| i.level >= level) {
        match open {
            Some((start, end)) if interval.start <= end => {
                open = Some((start, end.max(interval.end)));
            }
            _ => {
                if let Some((start, end)) = open {
                    each(start, end);
                }
                open = Some((interval.start, interval.end));
            }
        }
    }
    if let Some((start, end)) = open {
        each(start, end);
    }
}

/// Purchased CALs whose rights reach each level, over time up to `until`: a purchase counts
/// from its `at`, and Software Assurance raises its ceiling on each release it covers.
pub fn rights_steps(
    purchases: &[PurchaseRow],
    until: Timestamp,
    table: &[(ProductVersion, Timestamp)],
) -> Vec<StepRow> {
    let mut changes = Vec::new();
    for purchase in purchases {
        let quantity = purchase.quantity as i64;
        let mut reached = ceiling(purchase, purchase.at, table);
        for &level in LEVELS.iter().filter(|l| **l <= reached) {
            changes.push(Change {
                cal_type: purchase.cal_type,
                level,
                at: purchase.at,
                delta: quantity,
            });
        }
        let Some(sa_until) = purchase.software_assurance_until else { continue };
        if purchase.rights_through.is_some() {
            continue;
        }
        for &(version, available) in table {
            let level = level_of(version);
            if available > purchase.at
                && available <= sa_until
                && available <= until
                && level > reached
            {
                for &step in LEVELS.iter().filter(|l| **l > reached && **l <= level) {
                    changes.push(Change {
                        cal_type: purchase.cal_type,
                        level: step,
                        at: available,
                        delta: quantity,
                    });
                }
                reached = level;
            }
        }
    }
    steps(&mut changes)
}

/// Installed CALs whose requirement is at or above each level, over time: from every change of
/// a pack's quantity.
pub fn installed_steps(
    changes: impl Iterator<Item = (CalType, ProductVersion, Timestamp, i64)>,
) -> Vec<StepRow> {
    let mut all = Vec::new();
    for (cal_type, requirement, at, delta) in changes {
        for &level in LEVELS.iter().filter(|l| **l <= level_of(requirement)) {
            all.push(Change { cal_type, level, at, delta });
        }
    }
    steps(&mut all)
}

/// Every CAL type and level that has a purchase, a pack or a holder.
pub fn estate_levels(
    purchases: impl Iterator<Item = (CalType, ProductVersion)>,
    packs: impl Iterator<Item = (CalType, ProductVersion)>,
    holders: impl Iterator<Item = (CalType, ProductVersion)>,
) -> BTreeSet<(CalType, ProductVersion)> {
    // Inserted one by one, skipping a repeat of the last: collecting would first gather every
    // stretch's pair (millions) into a vector to sort, for a set of a dozen at most.
    let mut levels = BTreeSet::new();
    let mut last = None;
    for (cal_type, version) in purchases.chain(packs).chain(holders) {
        let pair = (cal_type, level_of(version));
        if last != Some(pair) {
            last = Some(pair);
            levels.insert(pair);
        }
    }
    levels
}

/// The value of step rows at `at` per type and level (the last change at or before it).
pub fn value_at(rows: &[StepRow], at: Timestamp) -> BTreeMap<(CalType, ProductVersion), i64> {
    let mut values = BTreeMap::new();
    for row in rows.iter().filter(|r| r.at <= at) {
        values.insert((row.cal_type, row.level), row.value);
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strings::Sym;

    fn purchase(program: &str, version: ProductVersion, at: &str, sa: Option<&str>) -> PurchaseRow {
        PurchaseRow {
            seq: 1,
            id: "p".into(),
            at: Timestamp::parse(at).unwrap(),
            agreement: "A".into(),
            program: Program::parse(program).unwrap().as_str(),
            product_version: version,
            cal_type: CalType::PerDevice,
            quantity: 10,
            anniversary: None,
            software_assurance_until: sa.map(|t| Timestamp::parse(t).unwrap()),
            rights_through: None,
            ceiling: version,
        }
    }

    /// The ceilings worked in RULES-EXAMPLES.md, "Ceilings of purchases".
    #[test]
    fn ceilings_of_the_worked_examples() {
        let table = made_available();
        let now = Timestamp::parse("2026-11-01T00:00:00Z").unwrap();
        let open = |at| purchase("open_license", ProductVersion::V2019, at, None);
        assert_eq!(ceiling(&open("2021-03-01T00:00:00Z"), now, &table), ProductVersion::V2019);
        assert_eq!(ceiling(&open("2021-10-01T00:00:00Z"), now, &table), ProductVersion::V2022);
        let ea = purchase(
            "enterprise_agreement",
            ProductVersion::V2016,
            "2017-02-01T00:00:00Z",
            Some("2020-01-31T23:59:59Z"),
        );
        assert_eq!(ceiling(&ea, now, &table), ProductVersion::V2019);
        // Judged before 2019 was made available, SA has not reached it yet.
        let before = Timestamp::parse("2018-01-01T00:00:00Z").unwrap();
        assert_eq!(ceiling(&ea, before, &table), ProductVersion::V2016);
        let retail = purchase("retail", ProductVersion::V2016, "2023-01-01T00:00:00Z", None);
        assert_eq!(ceiling(&retail, now, &table), ProductVersion::V2016);
        let mut through = open("2021-03-01T00:00:00Z");
        through.rights_through = Some(ProductVersion::V2022);
        assert_eq!(ceiling(&through, now, &table), ProductVersion::V2022);
        assert_eq!(level_of(ProductVersion::V2008R2), ProductVersion::V2008);
    }

    #[test]
    fn software_assurance_raises_rights_on_release_day() {
        let table = made_available();
        let ea = purchase(
            "enterprise_agreement",
            ProductVersion::V2016,
            "2017-02-01T00:00:00Z",
            Some("2020-01-31T23:59:59Z"),
        );
        let rows = rights_steps(&[ea], Timestamp::parse("2026-01-01T00:00:00Z").unwrap(), &table);
        let at = |t: &str| value_at(&rows, Timestamp::parse(t).unwrap());
        let before = at("2018-10-01T00:00:00Z");
        assert_eq!(before.get(&(CalType::PerDevice, ProductVersion::V2016)), Some(&10));
        assert_eq!(before.get(&(CalType::PerDevice, ProductVersion::V2019)), None);
        let after = at("2018-10-02T00:00:00Z");
        assert_eq!(after.get(&(CalType::PerDevice, ProductVersion::V2019)), Some(&10));
        assert_eq!(after.get(&(CalType::PerDevice, ProductVersion::V2022)), None);
    }

    /// `in_use_steps` as it was first written: every union's start and end as a change, summed
    /// by `steps`, over stretches sorted by a tuple of their fields. The faster form (its own sort
    /// key, the starts and ends walked together) must give its rows, in its order.
    fn in_use_steps_by_changes(intervals: &[UseInterval]) -> Vec<StepRow> {
        let mut held: Vec<Held> = intervals
            .iter()
            .filter(|i| i.start < i.end)
            .map(|i| Held {
                holder: (i.cal_type, i.holder),
                start: i.start,
                end: i.end,
                level: i.level,
            })
            .collect();
        held.sort_unstable_by_key(|h| (h.holder, h.start, h.end, h.level));
        let mut rows = Vec::new();
        for &level in LEVELS {
            let mut changes = Vec::new();
            for holder in held.chunk_by(|a, b| a.holder == b.holder) {
                let cal_type = holder[0].holder.0;
                unions_at(holder, level, |start, end| {
                    changes.push(Change { cal_type, level, at: start, delta: 1 });
                    changes.push(Change { cal_type, level, at: end, delta: -1 });
                });
            }
            rows.extend(steps(&mut changes));
        }
        rows
    }

    fn interval_strategy() -> impl proptest::strategy::Strategy<Value = UseInterval> {
        use proptest::prelude::*;
        // A small range of times and holders, so that stretches touch, overlap and share ends.
        (any::<bool>(), 0u32..6, 0usize..LEVELS.len(), 0i64..40, 0i64..12).prop_map(
            move |(per_user, holder, level, start, length)| {
                let t =
                    |n: i64| Timestamp::from_micros(1_700_000_000_000_000 + n * 1_000_000).unwrap();
                UseInterval {
                    cal_type: if per_user { CalType::PerUser } else { CalType::PerDevice },
                    holder: Sym::for_tests(holder),
                    level: LEVELS[level],
                    temporary: false,
                    start: t(start),
                    end: t(start + length),
                }
            },
        )
    }

    proptest::proptest! {
        /// Over random stretches (touching, overlapping, empty, at every level, of both types),
        /// the rows are those of the changes summed one by one, in the same order.
        #[test]
        fn in_use_steps_are_those_of_the_changes(
            intervals in proptest::collection::vec(interval_strategy(), 0..60)
        ) {
            let key = |rows: Vec<StepRow>| -> Vec<(CalType, ProductVersion, Timestamp, i64)> {
                rows.into_iter().map(|r| (r.cal_type, r.level, r.at, r.value)).collect()
            };
            proptest::prop_assert_eq!(
                key(in_use_steps(&intervals)),
                key(in_use_steps_by_changes(&intervals))
            );
        }

        /// Stretches at one or two levels, as in most estates, where most levels have the unions
        /// of the next level up that a stretch is at, or none: the same rows.
        #[test]
        fn in_use_steps_over_few_levels_are_those_of_the_changes(
            intervals in proptest::collection::vec(interval_strategy(), 0..60),
            levels in proptest::sample::subsequence(LEVELS.to_vec(), 1..=2),
        ) {
            let intervals: Vec<UseInterval> = intervals
                .into_iter()
                .enumerate()
                .map(|(i, interval)| UseInterval { level: levels[i % levels.len()], ..interval })
                .collect();
            let key = |rows: Vec<StepRow>| -> Vec<(CalType, ProductVersion, Timestamp, i64)> {
                rows.into_iter().map(|r| (r.cal_type, r.level, r.at, r.value)).collect()
            };
            proptest::prop_assert_eq!(
                key(in_use_steps(&intervals)),
                key(in_use_steps_by_changes(&intervals))
            );
        }

        /// Split between two cores or not, the sort gives what one sort gives, keys that come
        /// more than once included.
        #[test]
        fn a_sort_in_halves_is_a_sort(
            items in proptest::collection::vec((0u8..8, 0u16..1000), 0..200),
            from_len in 0usize..40,
        ) {
            let mut halves = items.clone();
            sort_in_halves(&mut halves, |item| item.0, from_len);
            let mut whole = items;
            whole.sort_by_key(|item| item.0);
            let keys = |items: &[(u8, u16)]| items.iter().map(|item| item.0).collect::<Vec<_>>();
            proptest::prop_assert_eq!(keys(&halves), keys(&whole));
            halves.sort_unstable();
            whole.sort_unstable();
            proptest::prop_assert_eq!(halves, whole);
        }
    }

    #[test]
    fn a_holder_counts_once_at_its_newest_level() {
        let t = |s: &str| Timestamp::parse(s).unwrap();
        let interval = |holder: u32, level, start, end| UseInterval {
            cal_type: CalType::PerUser,
            holder: Sym::for_tests(holder),
            level,
            temporary: false,
            start: t(start),
            end: t(end),
        };
        let rows = in_use_steps(&[
            interval(1, ProductVersion::V2019, "2025-01-01T00:00:00Z", "2025-03-01T00:00:00Z"),
            // The same user through another server's pack: counted once.
            interval(1, ProductVersion::V2022, "2025-02-01T00:00:00Z", "2025-04-01T00:00:00Z"),
            interval(2, ProductVersion::V2016, "2025-02-15T00:00:00Z", "2025-05-01T00:00:00Z"),
        ]);
        let count = |when: &str, level| {
            value_at(&rows, t(when)).get(&(CalType::PerUser, level)).copied().unwrap_or(0)
        };
        assert_eq!(count("2025-02-20T00:00:00Z", ProductVersion::V2016), 2);
        assert_eq!(count("2025-02-20T00:00:00Z", ProductVersion::V2019), 1);
        assert_eq!(count("2025-02-20T00:00:00Z", ProductVersion::V2022), 1);
        assert_eq!(count("2025-02-20T00:00:00Z", ProductVersion::V2025), 0);
        assert_eq!(count("2025-04-10T00:00:00Z", ProductVersion::V2019), 0);
        assert_eq!(count("2025-04-10T00:00:00Z", ProductVersion::V2016), 1);
    }
}
