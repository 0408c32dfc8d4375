//! The snapshot file beside the ledger (`LEDGER.snapshot`): a replay's state that a later
//! command loads and folds only the newer entries onto, when it provably gives what a replay
//! from the first entry gives. A snapshot that cannot serve is ignored, with a note on stderr
//! when it is damaged or another ledger's or version's, never an error; one that cannot be
//! written is skipped. `verify --deep` rebuilds its state from the entries and compares.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use caltrail_events::Timestamp;
use caltrail_replay::{AsOf, Replay, SnapshotHeader, SnapshotKey};
use caltrail_store::{FORMAT_VERSION, Ledger};

use crate::progress::Progress;
use crate::report::{Ahead, read_ahead};

/// Where the snapshot of the ledger at `db` lives.
pub(crate) fn path(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(".snapshot");
    db.with_file_name(name)
}

fn note(db: &Path, why: &dyn std::fmt::Display) {
    eprintln!(
        "caltrail: note: ignoring the snapshot {}: {why}; replaying from the first entry",
        path(db).display()
    );
}

/// The hash of entry `n` as the key holds it.
fn hash_of(ledger: &Ledger, n: u64) -> anyhow::Result<[u8; 32]> {
    let entries = ledger.read_entries(&[n])?;
    Ok(entries[0].hash.0)
}

/// The snapshot's state and what folding the entries after it needs, when the snapshot can
/// serve a replay of the first `n_known` entries judged as `as_of` says: it was written by
/// this version, from this ledger's first entries (the hash of its last entry is the
/// ledger's), and every entry after it comes after its latest event in valid time, retracts
/// nothing it folded and creates no pack it met. Otherwise `None`, and the caller replays
/// from the first entry. Errors are the ledger's, never the snapshot's.
pub(crate) fn load(
    ledger: &Ledger,
    db: &Path,
    as_of: AsOf,
    now: Timestamp,
    n_known: u64,
) -> anyhow::Result<Option<(Replay, Ahead)>> {
    let mut file = match File::open(path(db)) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            note(db, &e);
            return Ok(None);
        }
    };
    let header = match SnapshotHeader::read(&mut file) {
        Ok(header) => header,
        Err(e) => {
            note(db, &e);
            return Ok(None);
        }
    };
    let SnapshotKey { ledger_format, n_entries, head } = header.key;
    if i64::from(ledger_format) != FORMAT_VERSION {
        note(db, &format!("it is of a ledger of format {ledger_format}"));
        return Ok(None);
    }
    let n_events = ledger.head()?.n_events;
    if n_entries == 0 || n_entries > n_events {
        note(db, &format!("it is of {n_entries} entries, and the ledger holds {n_events}"));
        return Ok(None);
    }
    if hash_of(ledger, n_entries)? != head {
        note(db, &"it is of another ledger, or of a history since rewritten");
        return Ok(None);
    }
    // An earlier point than the snapshot's is replayed from the first entry.
    let serves = n_entries <= n_known
        && match as_of {
            AsOf::Time(t) => header.latest_at.is_none_or(|latest| latest <= t),
            AsOf::Latest | AsOf::Seq(_) => true,
        };
    if !serves {
        return Ok(None);
    }
    let ahead = read_ahead(ledger, db, n_entries, n_known)?;
    if let Some(latest) = header.latest_at
        && ahead.ats.iter().any(|at| *at < latest.micros())
    {
        return Ok(None);
    }
    let more = ahead.ats.len();
    let replay = match Replay::read_snapshot(file, &header, as_of, now, more) {
        Ok(replay) => replay,
        Err(e) => {
            note(db, &e);
            return Ok(None);
        }
    };
    for stored in &ahead.named {
        let is_new = |id: &str| ledger.seq_of(id).ok().flatten().is_some_and(|s| s > n_entries);
        if replay.refuses_to_extend_with(&stored.entry.event, is_new).is_some() {
            return Ok(None);
        }
    }
    Ok(Some((replay, ahead)))
}

/// A file beside the ledger that becomes its snapshot once written whole (`store` renames it
/// over the old one); removed if it is dropped before.
pub(crate) struct Pending {
    path: PathBuf,
    kept: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A new file of its own beside the ledger's snapshot, and the handle that removes it unless
/// it is kept; `None` when none can be made (a read-only folder).
fn pending(db: &Path, part: &str) -> Option<(File, Pending)> {
    let target = path(db);
    let mut name = target.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(format!(".{}.{part}.tmp", std::process::id()));
    let path = target.with_file_name(name);
    let file = File::options().read(true).write(true).create_new(true).open(&path).ok()?;
    Some((file, Pending { path, kept: false }))
}

/// The file a replay from the first entry that `store` will write as the snapshot puts its
/// `issues` rows in as they come (`Replay::spill_issues_to`), so that the replay never holds
/// that table whole; `None` when none can be made, and the replay holds it in memory.
pub(crate) fn begin(db: &Path) -> Option<(File, Pending)> {
    pending(db, "spill")
}

/// A file with no name in the ledger's folder, gone when the command ends, for the `issues`
/// rows of a replay that writes no snapshot (`--no-snapshot`, an earlier `--as-of`, the
/// events table): a large ledger's would take most of its memory. `None` when none can be
/// made (a read-only folder), and the replay holds them in memory.
pub(crate) fn scratch(db: &Path) -> Option<File> {
    let folder = db.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    tempfile::tempfile_in(folder).ok()
}

/// Writes `replay`, folded from the first `n` entries and not yet finished, as the ledger's
/// snapshot: into a file of its own beside it (`spilled`, when the replay put its `issues`
/// rows there), then renamed over the old one, so a reader sees the old snapshot or the new,
/// whole. Nothing is said when it cannot be written (a read-only folder, a full disk): it is
/// a cache.
pub(crate) fn store(ledger: &Ledger, db: &Path, replay: &Replay, n: u64, spilled: Option<Pending>) {
    let Ok(head) = hash_of(ledger, n) else { return };
    let key = SnapshotKey { ledger_format: FORMAT_VERSION as u32, n_entries: n, head };
    let written = match spilled {
        // The spill stops at a failed write; the whole state is then written anew.
        Some(spilled) if replay.write_spilled_snapshot(key).is_ok() => Some(spilled),
        _ => pending(db, "whole").and_then(|(file, pending)| {
            replay.write_snapshot(BufWriter::new(file), key).is_ok().then_some(pending)
        }),
    };
    if let Some(mut written) = written
        && std::fs::rename(&written.path, path(db)).is_ok()
    {
        written.kept = true;
    }
}

/// What `verify --deep` finds of the snapshot beside a ledger.
pub(crate) enum Found {
    /// It holds the state a replay of its entries from the first builds.
    Matches(u64),
    /// It is damaged, or another version's or ledger's: every command ignores it.
    Ignored(String),
    /// It reads as a snapshot of this ledger, and its state is not what its entries give:
    /// commands would answer from it.
    Differs(u64),
}

/// Checks the snapshot beside the ledger, if there is one: rebuilds the state of its entries
/// from the first and compares the two by `Replay::state_digest`.
pub(crate) fn check(ledger: &Ledger, db: &Path) -> anyhow::Result<Option<Found>> {
    let mut file = match File::open(path(db)) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Ok(Some(Found::Ignored(e.to_string()))),
    };
    let header = match SnapshotHeader::read(&mut file) {
        Ok(header) => header,
        Err(e) => return Ok(Some(Found::Ignored(e.to_string()))),
    };
    let n = header.key.n_entries;
    if i64::from(header.key.ledger_format) != FORMAT_VERSION
        || n == 0
        || n > ledger.head()?.n_events
        || hash_of(ledger, n)? != header.key.head
    {
        return Ok(Some(Found::Ignored("it is not of this ledger's entries".into())));
    }
    let now = Timestamp::now();
    let rebuilt = {
        let mut replay = Replay::new(AsOf::Latest, now, false);
        let ahead = read_ahead(ledger, db, 0, n)?;
        crate::report::fold(ledger, db, &mut replay, ahead, n, false, &Progress::none())?;
        replay.state_digest()?
    };
    Ok(Some(match Replay::read_snapshot(file, &header, AsOf::Latest, now, 0) {
        Err(e) => Found::Ignored(e.to_string()),
        Ok(stored) if stored.state_digest()? == rebuilt => Found::Matches(n),
        Ok(_) => Found::Differs(n),
    }))
}
