//! Snapshots of a replay's state before `finish`, so that a later command folds only the
//! entries after it: a compact binary form keyed by what it was built from and checked by a
//! BLAKE3 hash, and a canonical digest by which `verify --deep` compares two states. The
//! caller owns the file; this module writes to and reads from what it is given.
//!
//! Layout: a fixed header (`HEADER_LEN` bytes: magic, codec version, projection code, ledger
//! format, entry count, head hash, latest `at`, length of the issue blocks, body length, body
//! hash, and the BLAKE3 hash of all that, so that a change anywhere in the header is seen as
//! damage), then the `issues` rows in blocks of `BLOCK_ROWS`, then the body: the fields of the
//! state in the order `put_state` writes them, in three parts (`Part`), then the length and
//! BLAKE3 hash of each part; the header's body hash is the hash of that listing. The parts are
//! read at once, on threads of their own. In the body the `issues` table is the length and
//! BLAKE3 hash of each block. The blocks stay in the file when the state is read (`Issues`);
//! each is hashed as the state is read, and again whenever it is read back. Integers are LEB128 (signed ones
//! zigzag), times 8 bytes little-endian, texts a length and UTF-8, maps sorted by key, so the
//! same state always gives the same bytes. Values of the event contract are read back through
//! their validating parsers.

use std::collections::{BTreeMap, HashMap, HashSet};

use rustc_hash::FxBuildHasher;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

use caltrail_events::{
    Anniversary, CalType, CalsMigrated, Event, EventData, KeypackInstalled, MigrationReason,
    ProductVersion, Program, ServerName, Timestamp,
};

use crate::fold::{AsOf, PackKind, Replay};
use crate::issues::{BLOCK_ROWS, Issues, StoredBlock, StoredIssues, read_at, read_exact_at};
use crate::rows::{
    AgreementRow, CalRow, DebtRow, IssueKind, IssueRow, KeypackRow, MigrationRow, Origin,
    PurchaseRow, QuantityChangeRow, RestoreRow, RevocationRow, ServerRow, ServerStatus,
    StatusChangeRow, UseInterval,
};
use crate::strings::{Strings, Sym};

/// The hash of the projection code (this crate and the event types), made by `build.rs`: a
/// snapshot written by other code is another version's, whatever its codec says.
const PROJECTION_CODE: [u8; 16] = include!(concat!(env!("OUT_DIR"), "/projection_code.rs"));

const MAGIC: &[u8; 16] = b"caltrail-state\0\0";
/// The layout of the body; the projection code's hash changes with any change to the rows.
const CODEC_VERSION: u32 = 4;
/// magic, codec, code, format, count, head, latest flag and time, blocks length, body length,
/// body hash, header hash.
pub const HEADER_LEN: usize = HASHED_LEN + 32;
const HASHED_LEN: usize = 16 + 4 + 16 + 4 + 8 + 32 + 1 + 8 + 8 + 8 + 32;

/// What a snapshot was built from: a ledger of this format whose first `n_entries` entries
/// end with the hash `head`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotKey {
    /// The ledger's format (`PRAGMA user_version`).
    pub ledger_format: u32,
    /// How many entries the state folds: the first `n_entries` of the ledger.
    pub n_entries: u64,
    /// The chain hash of entry `n_entries`.
    pub head: [u8; 32],
}

/// A snapshot's header: its key, and the latest `at` the state folded (entries that extend
/// it must be at or after it in valid time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// What the snapshot was built from.
    pub key: SnapshotKey,
    /// The latest `at` of the events folded, retractions left out.
    pub latest_at: Option<Timestamp>,
    /// The bytes of the `issues` blocks, between the header and the body.
    blocks_len: u64,
    body_len: u64,
    body_hash: [u8; 32],
}

/// Why a snapshot was not written or not read. Every reader of one falls back to a full replay.
#[derive(Debug)]
pub enum SnapshotError {
    /// Reading or writing the file failed.
    Io(io::Error),
    /// The file does not start as a snapshot does.
    NotASnapshot,
    /// Another version of caltrail wrote it (another codec or projection code).
    OtherVersion,
    /// Its bytes are not what was written: the hash or the layout does not hold.
    Damaged(String),
    /// This state cannot be a snapshot: finished, with the events table, or mid-fold.
    NotSnapshottable(&'static str),
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::Io(e) => write!(f, "{e}"),
            SnapshotError::NotASnapshot => f.write_str("it is not a caltrail snapshot"),
            SnapshotError::OtherVersion => f.write_str("another version of caltrail wrote it"),
            SnapshotError::Damaged(why) => write!(f, "it is damaged ({why})"),
            SnapshotError::NotSnapshottable(why) => write!(f, "this state cannot be one: {why}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

impl From<io::Error> for SnapshotError {
    fn from(e: io::Error) -> SnapshotError {
        SnapshotError::Io(e)
    }
}

impl SnapshotHeader {
    /// Reads a header, refusing a file that is not a snapshot or is another version's.
    pub fn read(input: &mut impl Read) -> Result<SnapshotHeader, SnapshotError> {
        let mut bytes = [0u8; HEADER_LEN];
        input.read_exact(&mut bytes).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => SnapshotError::NotASnapshot,
            _ => SnapshotError::Io(e),
        })?;
        let mut at = 0;
        let mut take = |n: usize| {
            let part = &bytes[at..at + n];
            at += n;
            part
        };
        if take(16) != MAGIC {
            return Err(SnapshotError::NotASnapshot);
        }
        let codec = u32::from_le_bytes(take(4).try_into().expect("4 bytes"));
        let code: [u8; 16] = take(16).try_into().expect("16 bytes");
        if codec != CODEC_VERSION || code != PROJECTION_CODE {
            return Err(SnapshotError::OtherVersion);
        }
        if blake3::hash(&bytes[..HASHED_LEN]).as_bytes()[..] != bytes[HASHED_LEN..] {
            return Err(SnapshotError::Damaged("its header does not match its hash".into()));
        }
        let ledger_format = u32::from_le_bytes(take(4).try_into().expect("4 bytes"));
        let n_entries = u64::from_le_bytes(take(8).try_into().expect("8 bytes"));
        let head: [u8; 32] = take(32).try_into().expect("32 bytes");
        let has_latest = take(1)[0];
        let latest_micros = i64::from_le_bytes(take(8).try_into().expect("8 bytes"));
        let latest_at =
            match has_latest {
                0 => None,
                1 => Some(Timestamp::from_micros(latest_micros).ok_or_else(|| {
                    SnapshotError::Damaged("its latest time is out of range".into())
                })?),
                _ => return Err(SnapshotError::Damaged("its header is malformed".into())),
            };
        let blocks_len = u64::from_le_bytes(take(8).try_into().expect("8 bytes"));
        let body_len = u64::from_le_bytes(take(8).try_into().expect("8 bytes"));
        let body_hash: [u8; 32] = take(32).try_into().expect("32 bytes");
        Ok(SnapshotHeader {
            key: SnapshotKey { ledger_format, n_entries, head },
            latest_at,
            blocks_len,
            body_len,
            body_hash,
        })
    }

    fn bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = Vec::with_capacity(HEADER_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&CODEC_VERSION.to_le_bytes());
        out.extend_from_slice(&PROJECTION_CODE);
        out.extend_from_slice(&self.key.ledger_format.to_le_bytes());
        out.extend_from_slice(&self.key.n_entries.to_le_bytes());
        out.extend_from_slice(&self.key.head);
        out.push(u8::from(self.latest_at.is_some()));
        out.extend_from_slice(&self.latest_at.map_or(0, Timestamp::micros).to_le_bytes());
        out.extend_from_slice(&self.blocks_len.to_le_bytes());
        out.extend_from_slice(&self.body_len.to_le_bytes());
        out.extend_from_slice(&self.body_hash);
        let hash = blake3::hash(&out);
        out.extend_from_slice(hash.as_bytes());
        out.try_into().expect("invariant: the header is HEADER_LEN bytes")
    }
}

impl Replay {
    /// Writes this state, folded from the entries `key` names and not yet finished, as a
    /// snapshot. `out` is written from its start; the header goes last, once the body's hash
    /// is known, so a file cut short is never a valid snapshot.
    pub fn write_snapshot<W: Write + Seek>(
        &self,
        mut out: W,
        key: SnapshotKey,
    ) -> Result<(), SnapshotError> {
        self.snapshottable()?;
        out.seek(SeekFrom::Start(0))?;
        out.write_all(&[0u8; HEADER_LEN])?;
        // The blocks first, a block in memory at a time: the body holds their hashes.
        let mut blocks = Vec::new();
        let mut bytes = Vec::new();
        self.issues.for_each_block(|rows| {
            blocks.push(encode_issue_block(rows, &mut bytes)?);
            out.write_all(&bytes)?;
            Ok(())
        })?;
        self.write_body_and_header(&mut out, key, &blocks.iter().collect::<Vec<_>>())
    }

    /// Completes the snapshot whose `issues` blocks went to the file `spill_issues_to` gave,
    /// as they filled: the rows left (fewer than a block), the body, then the header. The file
    /// then holds what `write_snapshot` writes of this state.
    pub fn write_spilled_snapshot(&self, key: SnapshotKey) -> Result<(), SnapshotError> {
        self.snapshottable()?;
        let stored = self
            .issues
            .spilled()
            .ok_or(SnapshotError::NotSnapshottable("its issues are not all in its file"))?;
        let mut blocks: Vec<&BlockListing> = stored.blocks.iter().map(|b| &b.listing).collect();
        let spilled_len: u64 = blocks.iter().map(|b| b.len).sum();
        let mut file = &stored.file;
        file.seek(SeekFrom::Start(HEADER_LEN as u64 + spilled_len))?;
        let mut out = io::BufWriter::new(&mut file);
        let mut bytes = Vec::new();
        let tail;
        if !self.issues.rows.is_empty() {
            tail = encode_issue_block(&self.issues.rows, &mut bytes)?;
            out.write_all(&bytes)?;
            blocks.push(&tail);
        }
        self.write_body_and_header(&mut out, key, &blocks)?;
        let end = out.stream_position()?;
        drop(out);
        file.set_len(end)?;
        Ok(())
    }

    /// Writes the body after the `blocks` already written, then the header at the start.
    fn write_body_and_header<W: Write + Seek>(
        &self,
        out: &mut W,
        key: SnapshotKey,
        blocks: &[&BlockListing],
    ) -> Result<(), SnapshotError> {
        let blocks_len = blocks.iter().map(|block| block.len).sum();
        let mut listing = Vec::with_capacity(PART_LISTING_LEN);
        let mut body_len = PART_LISTING_LEN as u64;
        for part in Part::ALL {
            let mut hashing = HashingWrite { inner: out, hasher: blake3::Hasher::new() };
            let mut writer = Writer::new(&mut hashing, None);
            put_part(self, part, &mut writer, &IssuesForm::Blocks(blocks));
            let len = writer.finish()?;
            listing.extend_from_slice(&len.to_le_bytes());
            listing.extend_from_slice(hashing.hasher.finalize().as_bytes());
            body_len += len;
        }
        out.write_all(&listing)?;
        let body_hash = *blake3::hash(&listing).as_bytes();
        let end = out.stream_position()?;
        let header =
            SnapshotHeader { key, latest_at: self.latest_at, blocks_len, body_len, body_hash };
        out.seek(SeekFrom::Start(0))?;
        out.write_all(&header.bytes())?;
        out.seek(SeekFrom::Start(end))?;
        out.flush()?;
        Ok(())
    }

    /// Reads the state the snapshot `file` holds, whose header `SnapshotHeader::read` gave.
    /// The state is then judged as `as_of` says, at `now` for `AsOf::Latest`, with room for
    /// `more_events` events to be folded on top (the tables that grow by one row per event
    /// are allocated once, not grown by copying). The whole body is read and its hashes
    /// checked, and every block of `issues` rows hashed, before the state is returned: a
    /// damaged snapshot gives an error, never a state. The body's parts are read on threads of
    /// their own. The rows stay in the file, which the state keeps open.
    pub fn read_snapshot(
        file: File,
        header: &SnapshotHeader,
        as_of: AsOf,
        now: Timestamp,
        more_events: usize,
    ) -> Result<Replay, SnapshotError> {
        let damaged = |why: &str| SnapshotError::Damaged(why.to_owned());
        let body_start = (HEADER_LEN as u64)
            .checked_add(header.blocks_len)
            .ok_or_else(|| damaged("its blocks are too long"))?;
        let body_end = body_start
            .checked_add(header.body_len)
            .ok_or_else(|| damaged("its body is too long"))?;
        let listing_at = body_end
            .checked_sub(PART_LISTING_LEN as u64)
            .filter(|at| *at >= body_start)
            .ok_or_else(|| damaged("its body is too short"))?;
        let mut listing = [0u8; PART_LISTING_LEN];
        PartRead { file: &file, at: listing_at, end: body_end }.read_exact(&mut listing).map_err(
            |e| match e.kind() {
                io::ErrorKind::UnexpectedEof => damaged("it is cut short"),
                _ => SnapshotError::Io(e),
            },
        )?;
        if *blake3::hash(&listing).as_bytes() != header.body_hash {
            return Err(damaged("its hash does not match its bytes"));
        }
        if file.metadata()?.len() != body_end {
            return Err(damaged("bytes follow the state"));
        }
        // Each part's place, from its length, and hash, as the listing says.
        let mut parts = [(0u64, 0u64, [0u8; 32]); Part::ALL.len()];
        let mut at = body_start;
        for (place, listed) in parts.iter_mut().zip(listing.chunks_exact(PART_LISTED_LEN)) {
            let len = u64::from_le_bytes(listed[..8].try_into().expect("8 bytes"));
            let hash: [u8; 32] = listed[8..].try_into().expect("32 bytes");
            *place = (at, len, hash);
            at = at.checked_add(len).ok_or_else(|| damaged("its parts are too long"))?;
        }
        if at != listing_at {
            return Err(damaged("its parts are not as its body lists them"));
        }
        // Each part into a state of its own; `join_parts` moves them into one.
        let new_state = || Replay::new(as_of, now, false);
        let place = |part: Part| parts[part as usize];
        let (texts, tables, rest) = std::thread::scope(|scope| {
            let texts = scope.spawn(|| {
                let mut state = new_state();
                read_part(&file, place(Part::Texts), |r| take_texts(r, &mut state)).map(|()| state)
            });
            let tables = scope.spawn(|| {
                let mut state = new_state();
                read_part(&file, place(Part::Tables), |r| take_tables(r, &mut state))
                    .map(|()| state)
            });
            // The shortest part, then the blocks it lists, hashed while the others are read.
            let mut rest = new_state();
            let blocks =
                read_part(&file, place(Part::Rest), |r| take_rest(r, &mut rest, more_events))
                    .and_then(|listed| checked_blocks(&file, listed, header.blocks_len));
            let join = |part: std::thread::ScopedJoinHandle<'_, _>| {
                part.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            };
            (join(texts), join(tables), blocks.map(|blocks| (rest, blocks)))
        });
        let (mut state, (n_rows, blocks)) = rest?;
        let (texts, tables) = (texts?, tables?);
        state.join_parts(texts, tables, header.latest_at)?;
        let n_texts = state.strings.texts.len();
        let stored = StoredIssues { file, blocks, n_rows, n_texts };
        state.issues = Issues::stored(stored, more_events);
        Ok(state)
    }

    /// Moves what the parts read into other states into this one (read from the last part),
    /// and checks that the whole holds together.
    fn join_parts(
        &mut self,
        texts: Replay,
        tables: Replay,
        header_latest: Option<Timestamp>,
    ) -> Result<(), SnapshotError> {
        self.last_seq = texts.last_seq;
        self.n_applied = texts.n_applied;
        self.latest_at = texts.latest_at;
        self.strings = texts.strings;
        if self.latest_at != header_latest {
            return Err(SnapshotError::Damaged("its header and its state disagree".into()));
        }
        self.holder_keys = tables.holder_keys;
        self.servers = tables.servers;
        self.agreements = tables.agreements;
        self.purchases = tables.purchases;
        self.keypacks = tables.keypacks;
        self.timelines = tables.timelines;
        self.cals = tables.cals;
        self.cal_index = tables.cal_index;
        check_indexes(self).map_err(|Damaged(why)| SnapshotError::Damaged(why))?;
        rebuild_lookups(self);
        Ok(())
    }

    /// A digest of this state that does not depend on how it was built: handles are written
    /// as their texts and maps in the order of their keys' texts. Two states folded from the
    /// same entries, one from the start and one extending a snapshot, have the same digest.
    pub fn state_digest(&self) -> Result<[u8; 32], SnapshotError> {
        self.snapshottable()?;
        let mut hasher = blake3::Hasher::new();
        let mut writer = Writer::new(&mut hasher, Some(&self.strings));
        put_state(self, &mut writer, &IssuesForm::Rows);
        writer.finish()?;
        Ok(*hasher.finalize().as_bytes())
    }

    /// Why folding an entry after this state would not give the state a replay from the start
    /// gives, if it would not; `None` when it may be folded on top. The state folded its
    /// entries in valid-time order, so an entry before its latest `at` would have come among
    /// them. A replay knows retractions and pack-creating events ahead, whatever their `at`: a
    /// retraction of an event the state folded, or a pack the state met before its install,
    /// would have changed what the state holds. `is_new` says whether an event id belongs to
    /// the entries after the state.
    pub fn refuses_to_extend_with(
        &self,
        event: &Event,
        is_new: impl FnOnce(&str) -> bool,
    ) -> Option<&'static str> {
        if let EventData::EventRetracted(e) = &event.data {
            return (!is_new(e.retracts.as_str()))
                .then_some("a later entry retracts an event it holds");
        }
        if self.latest_at.is_some_and(|latest| event.at < latest) {
            return Some("a later entry is earlier in valid time than its last");
        }
        match &event.data {
            EventData::KeypackInstalled(KeypackInstalled { keypack, .. })
            | EventData::CalsMigrated(CalsMigrated { keypack, .. }) => self
                .has_met_name(keypack.as_str())
                .then_some("a later entry creates a pack its entries named"),
            _ => None,
        }
    }

    /// The `at` the entries folded after this state must be at or after: the latest of its
    /// events, retractions left out.
    pub fn extends_from(&self) -> Option<Timestamp> {
        self.latest_at
    }

    /// Whether the state has met this name: as a pack, or any other text it keeps.
    fn has_met_name(&self, name: &str) -> bool {
        // Every pack the state added is among its texts (`add_pack` interns its name).
        self.strings.find(name).is_some()
    }

    fn snapshottable(&self) -> Result<(), SnapshotError> {
        if self.finished {
            return Err(SnapshotError::NotSnapshottable("it is finished"));
        }
        if self.keep_events {
            return Err(SnapshotError::NotSnapshottable("it keeps the events table"));
        }
        if !self.pending_definitions.is_empty() {
            return Err(SnapshotError::NotSnapshottable("its packs are not resolved"));
        }
        Ok(())
    }
}

/// How `put_state` writes the `issues` table.
enum IssuesForm<'b> {
    /// Its row count, and the length, hash and kinds of each block written before the body.
    Blocks(&'b [&'b BlockListing]),
    /// Every row, as a digest compares them.
    Rows,
}

/// The parts of a body, in its order. Each is hashed on its own and read on a thread of its
/// own; they are about the same size in a large ledger (the texts, the CALs, the stretches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// The counts, the latest `at` and the texts.
    Texts = 0,
    /// The tables up to the CALs.
    Tables = 1,
    /// The tables after them, the `issues` blocks' listing among them.
    Rest = 2,
}

impl Part {
    const ALL: [Part; 3] = [Part::Texts, Part::Tables, Part::Rest];
}

/// What the body lists of a part after them all: its length and hash.
const PART_LISTED_LEN: usize = 8 + 32;
const PART_LISTING_LEN: usize = Part::ALL.len() * PART_LISTED_LEN;

/// The state's fields, in the snapshot's order. Finished-only fields (holders, steps, debts,
/// true-up years) are empty before `finish` and not written; `made_available` is data of the
/// code, read anew.
fn put_state(state: &Replay, w: &mut Writer<'_, '_>, issues: &IssuesForm<'_>) {
    for part in Part::ALL {
        put_part(state, part, w, issues);
    }
}

/// One part of the state's fields.
fn put_part(state: &Replay, part: Part, w: &mut Writer<'_, '_>, issues: &IssuesForm<'_>) {
    match part {
        Part::Texts => {
            state.last_seq.put(w);
            state.n_applied.put(w);
            state.latest_at.put(w);
            if w.canonical.is_none() {
                state.strings.texts.put(w);
                state.strings.lower.put(w);
            }
        }
        Part::Tables => put_tables(state, w),
        Part::Rest => put_rest(state, w, issues),
    }
}

fn put_tables(state: &Replay, w: &mut Writer<'_, '_>) {
    state.holder_keys.put(w);
    let mut servers: Vec<&ServerRow> = state.servers.values().collect();
    servers.sort_by(|a, b| a.server.cmp(&b.server));
    servers.put(w);
    state.agreements.put(w);
    state.purchases.put(w);
    state.keypacks.put(w);
    state.timelines.put(w);
    state.cals.put(w);
}

fn put_rest(state: &Replay, w: &mut Writer<'_, '_>, issues: &IssuesForm<'_>) {
    put_sorted(w, state.retracted_by.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut pack_kinds: Vec<(Sym, &PackKind)> =
        state.pack_kinds.iter().map(|(k, v)| (*k, v)).collect();
    match w.canonical {
        Some(s) => pack_kinds.sort_by_key(|(pack, _)| s.get(*pack)),
        None => pack_kinds.sort_unstable_by_key(|(pack, _)| *pack),
    }
    pack_kinds.put(w);
    state.past_servers.put(w);
    state.migrations.put(w);
    state.status_changes.put(w);
    state.issues.len().put(w);
    match issues {
        IssuesForm::Blocks(blocks) => {
            blocks.len().put(w);
            for block in *blocks {
                block.len.put(w);
                w.bytes(&block.hash);
                block.kinds.put(w);
            }
        }
        IssuesForm::Rows => {
            let rows = state.issues.for_each_block(|rows| {
                for row in rows {
                    row.put(w);
                }
                Ok(())
            });
            if let Err(e) = rows {
                w.fail(io::Error::other(e.to_string()));
            }
        }
    }
    state.revocations.put(w);
    state.restores.put(w);
    state.quantity_changes.put(w);
    state.intervals.put(w);
    state.left.put(w);
    state.debt_map.put(w);
}

/// A map with text keys, sorted by key.
fn put_sorted<'a, V: Put>(w: &mut Writer<'_, '_>, entries: impl Iterator<Item = (&'a str, V)>) {
    let mut entries: Vec<(&str, V)> = entries.collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries.len().put(w);
    for (key, value) in &entries {
        key.put(w);
        value.put(w);
    }
}

/// The counts, the latest `at` and the texts.
fn take_texts(r: &mut Reader<'_>, state: &mut Replay) -> Result<(), Damaged> {
    state.last_seq = Take::take(r)?;
    state.n_applied = Take::take(r)?;
    state.latest_at = Take::take(r)?;
    let texts: Vec<Box<str>> = Take::take(r)?;
    let lower: Vec<Option<Sym>> = Take::take(r)?;
    if lower.len() != texts.len() {
        return Err(Damaged("its texts are malformed".into()));
    }
    state.strings = Strings::from_texts(texts, lower)
        .ok_or_else(|| Damaged("its texts are malformed".into()))?;
    Ok(())
}

/// The tables up to the CALs, and the CALs' lookup by pack and holder.
fn take_tables(r: &mut Reader<'_>, state: &mut Replay) -> Result<(), Damaged> {
    state.holder_keys = Take::take(r)?;
    let servers: Vec<ServerRow> = Take::take(r)?;
    state.servers = servers.into_iter().map(|row| (row.server.clone(), row)).collect();
    state.agreements = Take::take(r)?;
    state.purchases = Take::take(r)?;
    state.keypacks = Take::take(r)?;
    state.timelines = Take::take(r)?;
    state.cals = Take::take(r)?;
    // A CAL is added only under a key no CAL has: the first row of a key is its row.
    let mut cal_index = HashMap::with_capacity_and_hasher(state.cals.len(), FxBuildHasher);
    for (i, (cal, holder)) in state.cals.iter().zip(&state.holder_keys).enumerate() {
        cal_index.entry((cal.keypack, *holder)).or_insert(i);
    }
    state.cal_index = cal_index;
    Ok(())
}

/// The tables after the CALs, and the `issues` blocks they list.
fn take_rest(
    r: &mut Reader<'_>,
    state: &mut Replay,
    more_events: usize,
) -> Result<IssueBlocks, Damaged> {
    let retracted_by: Vec<(String, String)> = Take::take(r)?;
    state.retracted_by = retracted_by.into_iter().collect();
    let pack_kinds: Vec<(Sym, PackKind)> = Take::take(r)?;
    state.pack_kinds = pack_kinds.into_iter().collect();
    state.past_servers = Take::take(r)?;
    state.migrations = Take::take(r)?;
    state.status_changes = Take::take(r)?;
    let n_rows: usize = Take::take(r)?;
    let n_blocks: usize = Take::take(r)?;
    if n_blocks != n_rows.div_ceil(BLOCK_ROWS) {
        return Err(Damaged("its issues are malformed".into()));
    }
    let mut blocks = Vec::new();
    for _ in 0..n_blocks {
        let len: u64 = Take::take(r)?;
        let hash: [u8; 32] = r.bytes(32)?.try_into().expect("32 bytes");
        let kinds: Vec<IssueKind> = Take::take(r)?;
        // In order and each once, as written: a block's kinds are looked up by halving.
        if !kinds.windows(2).all(|pair| pair[0] < pair[1]) {
            return Err(Damaged("its issues are malformed".into()));
        }
        blocks.push(BlockListing { len, hash, kinds });
    }
    state.revocations = Take::take(r)?;
    state.restores = Take::take(r)?;
    state.quantity_changes = Take::take(r)?;
    // Room for the stretches the entries folded on top may close, so that the table is not
    // copied to grow as they are folded (`finish` makes room for the ones it closes: the CALs
    // still open are in the part read beside this one).
    state.intervals = take_vec_with_room(r, more_events)?;
    state.left = Take::take(r)?;
    state.debt_map = Take::take(r)?;
    Ok(IssueBlocks { n_rows, blocks })
}

/// The `issues` blocks a body lists.
struct IssueBlocks {
    n_rows: usize,
    blocks: Vec<BlockListing>,
}

/// What a body says of one block of `issues` rows: its length, its hash and the kinds of its
/// rows (`IssueRow::kind`), in order.
#[derive(Debug)]
pub(crate) struct BlockListing {
    pub(crate) len: u64,
    pub(crate) hash: [u8; 32],
    pub(crate) kinds: Vec<IssueKind>,
}

/// Encodes a block of `issues` rows into `bytes` (cleared first), and says what the body
/// lists of it.
pub(crate) fn encode_issue_block(
    rows: &[IssueRow],
    bytes: &mut Vec<u8>,
) -> Result<BlockListing, SnapshotError> {
    bytes.clear();
    let mut writer = Writer::new(bytes, None);
    for row in rows {
        row.put(&mut writer);
    }
    let len = writer.finish()?;
    Ok(BlockListing { len, hash: *blake3::hash(bytes).as_bytes(), kinds: kinds_of(rows) })
}

/// The kinds of `rows`, in order and each once. A block holds 65,536 rows of a few dozen kinds
/// at most: collected into an ordered set, every row was sorted, 3.9% of the fold thread's
/// samples at 4.5M entries (perf), about half what encoding the rows takes.
fn kinds_of(rows: &[IssueRow]) -> Vec<IssueKind> {
    let mut seen: HashSet<IssueKind, FxBuildHasher> = HashSet::default();
    let mut last = None;
    for kind in rows.iter().map(IssueRow::kind) {
        // Rows next to each other are often of one kind: one comparison, no hash.
        if last != Some(kind) {
            seen.insert(kind);
            last = Some(kind);
        }
    }
    let mut kinds: Vec<IssueKind> = seen.into_iter().collect();
    kinds.sort_unstable();
    kinds
}

/// The row count and the blocks of `file` as `listed` says, once the bytes between the header
/// and the body are theirs and each block hashes as listed. The blocks are hashed on one thread
/// per core.
fn checked_blocks(
    file: &File,
    listed: IssueBlocks,
    blocks_len: u64,
) -> Result<(usize, Vec<StoredBlock>), SnapshotError> {
    let mut offset = HEADER_LEN as u64;
    let mut blocks = Vec::with_capacity(listed.blocks.len());
    for listing in listed.blocks {
        let len = listing.len;
        blocks.push(StoredBlock { offset, listing });
        offset = offset.saturating_add(len);
    }
    if offset - HEADER_LEN as u64 != blocks_len {
        return Err(SnapshotError::Damaged("its blocks are not as its body lists them".into()));
    }
    let n_workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..n_workers)
            .map(|first| {
                let blocks = &blocks;
                scope.spawn(move || -> Result<(), SnapshotError> {
                    let mut bytes = Vec::new();
                    for block in blocks.iter().skip(first).step_by(n_workers) {
                        let len = usize::try_from(block.listing.len).map_err(|_| {
                            SnapshotError::Damaged("a block of its issues is too long".into())
                        })?;
                        bytes.resize(len, 0);
                        read_exact_at(file, &mut bytes, block.offset)?;
                        if *blake3::hash(&bytes).as_bytes() != block.listing.hash {
                            return Err(SnapshotError::Damaged(
                                "a block of its issues does not match its hash".into(),
                            ));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|worker| {
            worker
                .join()
                .unwrap_or_else(|_| Err(SnapshotError::Damaged("hashing its blocks failed".into())))
        })
    })?;
    Ok((listed.n_rows, blocks))
}

/// The `n_rows` rows of an `issues` block, once its bytes hash as `block` says, each row's
/// kind is among those it lists and every handle they hold is below `n_texts`.
pub(crate) fn decode_issue_block(
    bytes: &[u8],
    n_rows: usize,
    block: &BlockListing,
    n_texts: usize,
) -> Result<Vec<IssueRow>, SnapshotError> {
    let changed = || {
        SnapshotError::Damaged("a block of its issues changed since the snapshot was read".into())
    };
    // The reader hashes the bytes as it takes them: bytes that do not decode are judged by
    // their hash too, so that a changed block is named as such.
    let mut input = bytes;
    let mut reader = Reader::new(&mut input, bytes.len() as u64);
    let taken: Result<Vec<IssueRow>, Damaged> =
        (0..n_rows).map(|_| IssueRow::take(&mut reader)).collect();
    let (hash, left) = reader.finish()?;
    if hash != block.hash || left != 0 {
        return Err(changed());
    }
    let rows = taken.map_err(|Damaged(why)| SnapshotError::Damaged(why))?;
    let sym_ok = |sym: &Sym| sym.index() < n_texts;
    let handles_ok = rows.iter().all(|i| {
        sym_ok(&i.server)
            && sym_ok(&i.keypack)
            && sym_ok(&i.holder)
            && i.id.as_ref().is_none_or(sym_ok)
            && i.session_host.as_ref().is_none_or(sym_ok)
    });
    if !handles_ok {
        return Err(SnapshotError::Damaged("an issue's text is not among its texts".into()));
    }
    // A kind left out of the list would hide its rows from the scans that skip blocks by kind.
    if !rows.iter().all(|row| block.kinds.binary_search(&row.kind()).is_ok()) {
        return Err(SnapshotError::Damaged("a block of its issues lists other kinds".into()));
    }
    Ok(rows)
}

/// The lookups the fold keeps beside its tables, which a snapshot does not hold: rebuilt from
/// the tables as the fold built them, each row under its name in the order it was added (a
/// later pack or migration of the same name takes its place). The CALs' lookup is built as
/// they are read (`take_tables`).
fn rebuild_lookups(state: &mut Replay) {
    state.keypack_index =
        state.keypacks.iter().enumerate().map(|(i, pack)| (pack.keypack.clone(), i)).collect();
    state.migration_index = state
        .migrations
        .iter()
        .enumerate()
        .map(|(i, migration)| (migration.migration.clone(), i))
        .collect();
}

/// Every index into another table points inside it, and every handle names a text, so a state
/// read back cannot make the fold index out of bounds.
fn check_indexes(state: &Replay) -> Result<(), Damaged> {
    let n_texts = state.strings.texts.len();
    let sym_ok = |sym: &Sym| sym.index() < n_texts;
    let n_cals = state.cals.len();
    let n_packs = state.keypacks.len();
    let ok = state.strings.lower.iter().flatten().all(sym_ok)
        && state.holder_keys.len() == n_cals
        && state.holder_keys.iter().all(sym_ok)
        && state.cals.iter().all(|c| {
            sym_ok(&c.server)
                && sym_ok(&c.keypack)
                && sym_ok(&c.holder)
                && c.session_host.as_ref().is_none_or(sym_ok)
        })
        && state.timelines.len() == n_packs
        && state.left.len() == n_packs
        && state.pack_kinds.keys().all(sym_ok)
        && state.intervals.iter().all(|i| sym_ok(&i.holder));
    if ok { Ok(()) } else { Err(Damaged("an index points outside its table".into())) }
}

/// The bytes `at..end` of a file, read at their offsets: the parts of a body are read at once
/// from one file.
struct PartRead<'f> {
    file: &'f File,
    at: u64,
    end: u64,
}

impl Read for PartRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min(usize::try_from(self.end - self.at).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        #[cfg(unix)]
        let n = read_at(self.file, &mut buf[..want], self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Takes the part of `len` bytes at `at` in `file` with `take`, once all of it is taken and it
/// hashes to `hash`.
fn read_part<T>(
    file: &File,
    (at, len, hash): (u64, u64, [u8; 32]),
    take: impl FnOnce(&mut Reader<'_>) -> Result<T, Damaged>,
) -> Result<T, SnapshotError> {
    let mut input = PartRead { file, at, end: at.saturating_add(len) };
    let mut reader = Reader::new(&mut input, len);
    let taken = take(&mut reader).map_err(|Damaged(why)| SnapshotError::Damaged(why))?;
    let (read_hash, left) = reader.finish()?;
    if left != 0 {
        return Err(SnapshotError::Damaged(format!("{left} bytes follow a part of the state")));
    }
    if read_hash != hash {
        return Err(SnapshotError::Damaged("its hash does not match its bytes".into()));
    }
    Ok(taken)
}

/// Why a body did not read back.
#[derive(Debug)]
pub(crate) struct Damaged(String);

/// Buffers what is written, with the handles' texts in a digest.
pub(crate) struct Writer<'o, 's> {
    out: &'o mut dyn Write,
    buf: Vec<u8>,
    written: u64,
    error: Option<io::Error>,
    /// For a digest: the texts handles are written as.
    canonical: Option<&'s Strings>,
}

const BUFFER: usize = 1 << 20;

impl<'o, 's> Writer<'o, 's> {
    fn new(out: &'o mut dyn Write, canonical: Option<&'s Strings>) -> Writer<'o, 's> {
        Writer { out, buf: Vec::with_capacity(BUFFER), written: 0, error: None, canonical }
    }

    fn bytes(&mut self, bytes: &[u8]) {
        if self.buf.len() + bytes.len() > BUFFER {
            self.flush();
        }
        self.buf.extend_from_slice(bytes);
    }

    fn flush(&mut self) {
        if self.error.is_none()
            && let Err(e) = self.out.write_all(&self.buf)
        {
            self.error = Some(e);
        }
        self.written += self.buf.len() as u64;
        self.buf.clear();
    }

    /// One byte: a row of the issues table is a dozen of them, and a slice of one cost a
    /// copy call each.
    #[inline]
    fn byte(&mut self, byte: u8) {
        if self.buf.len() >= BUFFER {
            self.flush();
        }
        self.buf.push(byte);
    }

    fn varint(&mut self, mut n: u64) {
        loop {
            let low = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.byte(low);
                return;
            }
            self.byte(low | 0x80);
        }
    }

    /// Makes `finish` give this error, unless an earlier one came first.
    fn fail(&mut self, e: io::Error) {
        self.error.get_or_insert(e);
    }

    /// Flushes, and gives the number of bytes written or the first error.
    fn finish(mut self) -> io::Result<u64> {
        self.flush();
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(self.written),
        }
    }
}

struct HashingWrite<'w, W: Write> {
    inner: &'w mut W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for HashingWrite<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads a body of known length in large blocks, hashing each block as it comes.
pub(crate) struct Reader<'i> {
    input: &'i mut dyn Read,
    buf: Vec<u8>,
    pos: usize,
    /// Bytes of the body not yet taken into `buf`.
    unread: u64,
    hasher: blake3::Hasher,
    error: Option<io::Error>,
}

impl<'i> Reader<'i> {
    fn new(input: &'i mut dyn Read, body_len: u64) -> Reader<'i> {
        Reader {
            input,
            buf: Vec::new(),
            pos: 0,
            unread: body_len,
            hasher: blake3::Hasher::new(),
            error: None,
        }
    }

    /// The body's bytes not yet taken: no table can have more rows than that.
    fn remaining(&self) -> u64 {
        self.unread + (self.buf.len() - self.pos) as u64
    }

    fn refill(&mut self, need: usize) -> Result<(), Damaged> {
        self.buf.drain(..self.pos);
        self.pos = 0;
        while self.buf.len() < need {
            let want = (BUFFER as u64).min(self.unread) as usize;
            if want == 0 {
                return Err(Damaged("it ends in the middle of the state".into()));
            }
            let start = self.buf.len();
            self.buf.resize(start + want, 0);
            if let Err(e) = self.input.read_exact(&mut self.buf[start..]) {
                let why = format!("reading it failed: {e}");
                self.error = Some(e);
                return Err(Damaged(why));
            }
            self.hasher.update(&self.buf[start..]);
            self.unread -= want as u64;
        }
        Ok(())
    }

    #[inline]
    fn bytes(&mut self, n: usize) -> Result<&[u8], Damaged> {
        if self.buf.len() - self.pos < n {
            self.refill(n)?;
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.buf[start..self.pos])
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, Damaged> {
        Ok(self.bytes(1)?[0])
    }

    fn varint(&mut self) -> Result<u64, Damaged> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            n |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(Damaged("a number is too long".into()))
    }

    /// Reads what is left of the body and gives its hash and how many bytes were not taken.
    fn finish(mut self) -> Result<([u8; 32], u64), SnapshotError> {
        if let Some(e) = self.error.take() {
            return Err(SnapshotError::Io(e));
        }
        let left = self.remaining();
        while self.unread > 0 {
            let want = (BUFFER as u64).min(self.unread) as usize;
            self.buf.resize(want, 0);
            self.input.read_exact(&mut self.buf).map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => SnapshotError::Damaged("it is cut short".into()),
                _ => SnapshotError::Io(e),
            })?;
            self.hasher.update(&self.buf);
            self.unread -= want as u64;
        }
        Ok((*self.hasher.finalize().as_bytes(), left))
    }
}

/// A value of the state, written as snapshot bytes.
pub(crate) trait Put {
    fn put(&self, w: &mut Writer<'_, '_>);
}

/// A value of the state, read back from snapshot bytes.
pub(crate) trait Take: Sized {
    fn take(r: &mut Reader<'_>) -> Result<Self, Damaged>;
}

impl Put for u64 {
    fn put(&self, w: &mut Writer<'_, '_>) {
        w.varint(*self);
    }
}

impl Take for u64 {
    fn take(r: &mut Reader<'_>) -> Result<u64, Damaged> {
        r.varint()
    }
}

impl Put for u32 {
    fn put(&self, w: &mut Writer<'_, '_>) {
        w.varint(u64::from(*self));
    }
}

impl Take for u32 {
    fn take(r: &mut Reader<'_>) -> Result<u32, Damaged> {
        u32::try_from(r.varint()?).map_err(|_| Damaged("a number is out of range".into()))
    }
}

impl Put for usize {
    fn put(&self, w: &mut Writer<'_, '_>) {
        w.varint(*self as u64);
    }
}

impl Take for usize {
    fn take(r: &mut Reader<'_>) -> Result<usize, Damaged> {
        usize::try_from(r.varint()?).map_err(|_| Damaged("a number is out of range".into()))
    }
}

impl Put for i64 {
    fn put(&self, w: &mut Writer<'_, '_>) {
        w.varint(((*self << 1) ^ (*self >> 63)) as u64);
    }
}

impl Take for i64 {
    fn take(r: &mut Reader<'_>) -> Result<i64, Damaged> {
        let n = r.varint()?;
        Ok(((n >> 1) as i64) ^ -((n & 1) as i64))
    }
}

impl Put for bool {
    fn put(&self, w: &mut Writer<'_, '_>) {
        w.byte(u8::from(*self));
    }
}

impl Take for bool {
    fn take(r: &mut Reader<'_>) -> Result<bool, Damaged> {
        match r.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Damaged("a flag is neither 0 nor 1".into())),
        }
    }
}

impl Put for Timestamp {
    fn put(&self, w: &mut Writer<'_, '_>) {
        w.bytes(&self.micros().to_le_bytes());
    }
}

impl Take for Timestamp {
    fn take(r: &mut Reader<'_>) -> Result<Timestamp, Damaged> {
        let micros = i64::from_le_bytes(r.bytes(8)?.try_into().expect("8 bytes"));
        Timestamp::from_micros(micros).ok_or_else(|| Damaged("a time is out of range".into()))
    }
}

impl Put for &str {
    fn put(&self, w: &mut Writer<'_, '_>) {
        self.len().put(w);
        w.bytes(self.as_bytes());
    }
}

fn take_text<'r>(r: &'r mut Reader<'_>) -> Result<&'r str, Damaged> {
    let len: usize = Take::take(r)?;
    if len as u64 > r.remaining() {
        return Err(Damaged("a text is longer than the snapshot".into()));
    }
    std::str::from_utf8(r.bytes(len)?).map_err(|_| Damaged("a text is not UTF-8".into()))
}

impl Put for String {
    fn put(&self, w: &mut Writer<'_, '_>) {
        self.as_str().put(w);
    }
}

impl Take for String {
    fn take(r: &mut Reader<'_>) -> Result<String, Damaged> {
        take_text(r).map(str::to_owned)
    }
}

impl Put for Box<str> {
    fn put(&self, w: &mut Writer<'_, '_>) {
        (&**self).put(w);
    }
}

impl Take for Box<str> {
    fn take(r: &mut Reader<'_>) -> Result<Box<str>, Damaged> {
        take_text(r).map(Box::from)
    }
}

/// The texts rows hold as `&'static str`: the programs and migration reasons of the contract.
fn static_text(text: &str) -> Option<&'static str> {
    Program::parse(text)
        .map(Program::as_str)
        .or_else(|_| MigrationReason::parse(text).map(MigrationReason::as_str))
        .ok()
}

/// A `&'static str` of the contract, read back through `static_text`.
struct StaticText(&'static str);

impl Put for StaticText {
    fn put(&self, w: &mut Writer<'_, '_>) {
        self.0.put(w);
    }
}

impl Take for StaticText {
    fn take(r: &mut Reader<'_>) -> Result<StaticText, Damaged> {
        let text = take_text(r)?;
        static_text(text).map(StaticText).ok_or_else(|| Damaged(format!("unknown text {text:?}")))
    }
}

impl Put for ServerName {
    fn put(&self, w: &mut Writer<'_, '_>) {
        self.as_str().put(w);
    }
}

impl Take for ServerName {
    fn take(r: &mut Reader<'_>) -> Result<ServerName, Damaged> {
        ServerName::parse(take_text(r)?).map_err(Damaged)
    }
}

impl Put for Anniversary {
    fn put(&self, w: &mut Writer<'_, '_>) {
        self.to_string().as_str().put(w);
    }
}

impl Take for Anniversary {
    fn take(r: &mut Reader<'_>) -> Result<Anniversary, Damaged> {
        Anniversary::parse(take_text(r)?).map_err(Damaged)
    }
}

impl Put for Sym {
    fn put(&self, w: &mut Writer<'_, '_>) {
        match w.canonical {
            Some(strings) => strings.get(*self).put(w),
            None => (self.index() as u64).put(w),
        }
    }
}

impl Take for Sym {
    fn take(r: &mut Reader<'_>) -> Result<Sym, Damaged> {
        // A handle past the last text is refused by `check_indexes`.
        u32::take(r).map(Sym::from_index)
    }
}

/// An enum written as its place in a list of every value.
macro_rules! listed_enum {
    ($ty:ty, $all:expr) => {
        impl Put for $ty {
            fn put(&self, w: &mut Writer<'_, '_>) {
                let place = $all.iter().position(|v| v == self).expect("every value is listed");
                w.byte(place as u8);
            }
        }
        impl Take for $ty {
            fn take(r: &mut Reader<'_>) -> Result<$ty, Damaged> {
                let place = r.byte()?;
                $all.get(usize::from(place))
                    .copied()
                    .ok_or_else(|| Damaged(format!("{} {place} is unknown", stringify!($ty))))
            }
        }
    };
}

listed_enum!(ProductVersion, ProductVersion::ALL);
listed_enum!(CalType, CalType::ALL);
listed_enum!(
    ServerStatus,
    [
        ServerStatus::NeverActivated,
        ServerStatus::Activated,
        ServerStatus::Deactivated,
        ServerStatus::Decommissioned
    ]
);
listed_enum!(Origin, [Origin::Installed, Origin::Migrated]);

impl<T: Put> Put for Option<T> {
    fn put(&self, w: &mut Writer<'_, '_>) {
        match self {
            None => w.byte(0),
            Some(value) => {
                w.byte(1);
                value.put(w);
            }
        }
    }
}

impl<T: Take> Take for Option<T> {
    fn take(r: &mut Reader<'_>) -> Result<Option<T>, Damaged> {
        match r.byte()? {
            0 => Ok(None),
            1 => T::take(r).map(Some),
            _ => Err(Damaged("an optional value is malformed".into())),
        }
    }
}

impl<T: Put> Put for Vec<T> {
    fn put(&self, w: &mut Writer<'_, '_>) {
        self.as_slice().put(w);
    }
}

impl<T: Take> Take for Vec<T> {
    fn take(r: &mut Reader<'_>) -> Result<Vec<T>, Damaged> {
        take_vec_with_room(r, 0)
    }
}

/// A table read with room for `room` more rows.
fn take_vec_with_room<T: Take>(r: &mut Reader<'_>, room: usize) -> Result<Vec<T>, Damaged> {
    let len: usize = Take::take(r)?;
    // Every element takes at least a byte: a damaged length cannot ask for more room.
    if len as u64 > r.remaining() {
        return Err(Damaged("a table is longer than the snapshot".into()));
    }
    let mut items = Vec::with_capacity(len.saturating_add(room));
    for _ in 0..len {
        items.push(T::take(r)?);
    }
    Ok(items)
}

impl<T: Put> Put for [T] {
    fn put(&self, w: &mut Writer<'_, '_>) {
        self.len().put(w);
        for item in self {
            item.put(w);
        }
    }
}

impl<T: Put> Put for &T {
    fn put(&self, w: &mut Writer<'_, '_>) {
        (**self).put(w);
    }
}

impl<K: Put + Ord, V: Put> Put for BTreeMap<K, V> {
    fn put(&self, w: &mut Writer<'_, '_>) {
        self.len().put(w);
        for (key, value) in self {
            key.put(w);
            value.put(w);
        }
    }
}

impl<K: Take + Ord, V: Take> Take for BTreeMap<K, V> {
    fn take(r: &mut Reader<'_>) -> Result<BTreeMap<K, V>, Damaged> {
        let pairs: Vec<(K, V)> = Take::take(r)?;
        Ok(pairs.into_iter().collect())
    }
}

macro_rules! tuple_field {
    ($($name:ident),+) => {
        impl<$($name: Put),+> Put for ($($name,)+) {
            #[allow(non_snake_case, reason = "one binding per type parameter")]
            fn put(&self, w: &mut Writer<'_, '_>) {
                let ($($name,)+) = self;
                $($name.put(w);)+
            }
        }
        impl<$($name: Take),+> Take for ($($name,)+) {
            fn take(r: &mut Reader<'_>) -> Result<Self, Damaged> {
                Ok(($($name::take(r)?,)+))
            }
        }
    };
}

tuple_field!(A, B);
tuple_field!(A, B, C);
tuple_field!(A, B, C, D, E);

/// A row written field by field, in the order listed. The struct literal in `take` names every
/// field, so a field added to a row and not here does not compile.
macro_rules! row_field {
    ($ty:ident { $($field:ident),+ $(,)? } $(static { $($text:ident),+ })?) => {
        impl Put for $ty {
            fn put(&self, w: &mut Writer<'_, '_>) {
                $(self.$field.put(w);)+
                $($(StaticText(self.$text).put(w);)+)?
            }
        }
        impl Take for $ty {
            fn take(r: &mut Reader<'_>) -> Result<$ty, Damaged> {
                $(let $field = Take::take(r)?;)+
                $($(let $text = StaticText::take(r)?.0;)+)?
                Ok($ty { $($field,)+ $($($text,)+)? })
            }
        }
    };
}

row_field!(ServerRow {
    server,
    incarnation,
    status,
    license_server_id,
    os_version,
    activated_at,
    opening,
    deactivated_at,
    decommissioned_at,
    reactivated_at,
    last_restored_at,
    last_backup_taken_at,
    last_rebuilt_at,
});
row_field!(AgreementRow {
    agreement,
    number,
    product_version,
    cal_type,
    purchased,
    n_purchases,
    anniversary,
    first_purchased_at,
    last_purchased_at,
} static { program });
row_field!(PurchaseRow {
    seq,
    id,
    at,
    agreement,
    product_version,
    cal_type,
    quantity,
    anniversary,
    software_assurance_until,
    rights_through,
    ceiling,
} static { program });
row_field!(KeypackRow {
    keypack,
    server,
    incarnation,
    agreement,
    product_version,
    cal_type,
    downgraded_from,
    wmi_keypack_id,
    origin,
    migration,
    from_keypack,
    installed_seq,
    installed_id,
    installed_at,
    installed,
    removed,
    restored,
    lost,
    current_quantity,
    resurrected,
    resurrected_by,
    active_issued,
    available,
});
row_field!(CalRow {
    server,
    keypack,
    holder,
    cal_type,
    product_version,
    hardware_id,
    temporary,
    issued_at,
    renewed_at,
    n_issues,
    expires_at,
    expires_at_given,
    active_until,
    level,
    revoked_at,
    cleared_at,
    session_host,
    session_host_version,
    active,
    open_interval,
});
row_field!(MigrationRow {
    migration,
    seq,
    at,
    source,
    target,
    source_reachable,
    from_keypack,
    source_incarnation,
    target_incarnation,
    keypack,
    quantity,
    source_removed,
    agreement,
    product_version,
    cal_type,
    source_license_server_id,
    pack_known,
    removed_by_hand,
    removals,
    removed_at,
    not_removed,
} static { reason });
row_field!(StatusChangeRow { seq, at, server, incarnation, status, license_server_id, os_version });
row_field!(IssueRow {
    seq,
    id,
    at,
    server,
    keypack,
    holder,
    cal_type,
    product_version,
    temporary,
    renewal,
    session_host,
    session_host_version,
    server_status,
});
row_field!(IssueKind {
    cal_type,
    product_version,
    temporary,
    renewal,
    session_host_version,
    server_status,
});
row_field!(RevocationRow {
    seq,
    id,
    at,
    server,
    keypack,
    holder,
    cal_type,
    product_version,
    installed_on_server,
});
row_field!(RestoreRow {
    seq,
    id,
    at,
    server,
    backup_taken_at,
    same_machine,
    os_replaced,
    keypack,
    agreement,
    product_version,
    cal_type,
    entitlement_version,
    quantity_at_backup,
    issued_at_backup,
    quantity_before,
    quantity_after,
    came_back,
    unissued_lost,
    resurrected,
});
row_field!(QuantityChangeRow {
    seq,
    at,
    keypack,
    server,
    agreement,
    entitlement_version,
    cal_type,
    delta,
});
row_field!(UseInterval { cal_type, holder, level, temporary, start, end });
row_field!(DebtRow { server, incarnation, agreement, requirement, cal_type, owed, since, events });
row_field!(PackKind { agreement, product_version, cal_type, downgraded_from });

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Seek, SeekFrom, Write};

    use caltrail_events::{Event, Timestamp};

    use super::{CalRow, SnapshotError, SnapshotHeader, SnapshotKey, Sym};
    use crate::{AsOf, KnownEntry, Replay};

    fn now() -> Timestamp {
        Timestamp::parse("2030-01-01T00:00:00Z").unwrap()
    }

    /// Every fixture story, its events in chain order.
    fn stories() -> Vec<(String, Vec<Event>)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        let mut stories: Vec<(String, Vec<Event>)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "jsonl"))
            .map(|path| {
                let text = std::fs::read_to_string(&path).unwrap();
                let events = text
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| Event::from_json(l).unwrap());
                (path.file_name().unwrap().to_string_lossy().into_owned(), events.collect())
            })
            .collect();
        stories.sort_by(|a, b| a.0.cmp(&b.0));
        assert!(stories.len() >= 12, "the fixture stories are missing");
        stories
    }

    fn entries(events: &[Event], first_seq: usize) -> Vec<KnownEntry<'_>> {
        events
            .iter()
            .enumerate()
            .map(|(i, event)| KnownEntry {
                seq: (first_seq + i) as u64,
                recorded_at: now(),
                hash: "",
                event,
            })
            .collect()
    }

    fn folded(events: &[Event]) -> Replay {
        let mut state = Replay::new(AsOf::Latest, now(), false);
        state.fold(entries(events, 1));
        state
    }

    fn key(n_entries: usize) -> SnapshotKey {
        SnapshotKey { ledger_format: 1, n_entries: n_entries as u64, head: [7; 32] }
    }

    fn snapshot_bytes(state: &Replay, n_entries: usize) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        state.write_snapshot(&mut out, key(n_entries)).unwrap();
        out.into_inner()
    }

    fn read(bytes: &[u8]) -> Result<Replay, SnapshotError> {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
        let header = SnapshotHeader::read(&mut file)?;
        Replay::read_snapshot(file, &header, AsOf::Latest, now(), 0)
    }

    /// What `finish` makes of a state, as text: the tables the rules read.
    fn judged(state: Replay) -> String {
        let s = state.finish();
        // A CAL's handles depend on the order the fold met the texts: its texts are compared.
        let text = |sym| s.strings.get(sym);
        let cals: Vec<_> = s
            .cals
            .iter()
            .map(|c| {
                let texts = (text(c.server), text(c.keypack), text(c.holder));
                let no_text = Sym::for_tests(0);
                let rest = CalRow {
                    server: no_text,
                    keypack: no_text,
                    holder: no_text,
                    session_host: None,
                    ..c.clone()
                };
                (texts, c.session_host.map(text), rest)
            })
            .collect();
        format!(
            "{:?}",
            (
                (&s.keypacks, &cals, &s.migrations, &s.purchases, &s.agreements, &s.restores),
                (&s.holders, &s.in_use_steps, &s.rights_steps, &s.installed_steps),
                (&s.debts, &s.true_up_years, &s.estate_levels, &s.revocations, &s.status_changes),
                (&s.quantity_changes, s.last_seq, s.n_applied),
            )
        )
    }

    #[test]
    fn a_state_reads_back_as_it_was_written() {
        for (name, events) in stories() {
            let state = folded(&events);
            let bytes = snapshot_bytes(&state, events.len());
            let back = read(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(snapshot_bytes(&back, events.len()), bytes, "{name}");
            assert_eq!(back.state_digest().unwrap(), state.state_digest().unwrap(), "{name}");
            // The lookups a snapshot does not hold are rebuilt as the fold had them.
            assert_eq!(back.keypack_index, state.keypack_index, "{name}");
            assert_eq!(back.migration_index, state.migration_index, "{name}");
            assert_eq!(back.cal_index, state.cal_index, "{name}");
            assert_eq!(judged(back), judged(state), "{name}");
        }
    }

    #[test]
    fn a_snapshot_extended_by_later_entries_is_the_state_replayed_from_the_start() {
        let (mut extended, mut refused, mut wrong_if_extended) = (0, 0, 0);
        for (name, events) in stories() {
            let whole = folded(&events);
            let whole_digest = whole.state_digest().unwrap();
            let whole_judged = judged(whole);
            for split in 1..events.len() {
                let (before, after) = events.split_at(split);
                let mut state = read(&snapshot_bytes(&folded(before), split)).unwrap();
                let later_ids: Vec<&str> = after.iter().map(|e| e.id.as_str()).collect();
                let refuses = after.iter().any(|e| {
                    state.refuses_to_extend_with(e, |id| later_ids.contains(&id)).is_some()
                });
                state.fold(entries(after, split + 1));
                if refuses {
                    refused += 1;
                    wrong_if_extended += usize::from(state.state_digest().unwrap() != whole_digest);
                    continue;
                }
                assert_eq!(state.state_digest().unwrap(), whole_digest, "{name} after {split}");
                assert_eq!(judged(state), whole_judged, "{name} after {split}");
                extended += 1;
            }
        }
        // Most splits of the stories extend; late records and corrections are refused, and
        // folding all but one of those on top would have given another state.
        assert_eq!((extended, refused, wrong_if_extended), (135, 5, 4));
    }

    #[test]
    fn a_damaged_or_foreign_snapshot_is_refused() {
        let events = &stories()[0].1;
        let bytes = snapshot_bytes(&folded(events), events.len());
        assert!(read(&bytes).is_ok());
        // Every byte of the body, flipped, is caught; so is a cut anywhere.
        for at in super::HEADER_LEN..bytes.len() {
            let mut changed = bytes.clone();
            changed[at] ^= 0x20;
            assert!(matches!(read(&changed), Err(SnapshotError::Damaged(_))), "byte {at}");
        }
        for len in [0, 10, super::HEADER_LEN, bytes.len() - 1] {
            assert!(read(&bytes[..len]).is_err(), "cut at {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(read(&longer), Err(SnapshotError::Damaged(_))));
        let mut other_code = bytes.clone();
        other_code[20] ^= 1;
        assert!(matches!(read(&other_code), Err(SnapshotError::OtherVersion)));
        let mut not_one = bytes.clone();
        not_one[0] = b'X';
        assert!(matches!(read(&not_one), Err(SnapshotError::NotASnapshot)));
    }

    /// A history of `n` CALs issued to 300 devices in turn, after the pack they come from.
    fn issues_history(n: usize) -> Vec<Event> {
        let mut lines = vec![
            r#"{"id":"a1","type":"server.activated","at":"2025-01-01T00:00:00Z","data":{"server":"ls01","license_server_id":"ABCDE12345FGHIJ67890KLMNO12345PQRST","os_version":"2022","method":"automatic"}}"#.to_owned(),
            r#"{"id":"k1","type":"keypack.installed","at":"2025-01-02T00:00:00Z","data":{"server":"ls01","keypack":"ls01/1","agreement":"EA-1","product_version":"2022","cal_type":"per_device","quantity":300}}"#.to_owned(),
        ];
        for i in 0..n {
            lines.push(format!(
                r#"{{"id":"c{i}","type":"cal.issued","at":"2025-02-01T00:00:00Z","data":{{"server":"ls01","keypack":"ls01/1","holder":"PC-{}"}}}}"#,
                i % 300
            ));
        }
        lines.iter().map(|l| Event::from_json(l).unwrap()).collect()
    }

    proptest::proptest! {
        /// A block lists the kinds of its rows in order, each once: what collecting them in
        /// an ordered set gives, for rows of many kinds, of few, and in runs of one kind.
        #[test]
        fn a_blocks_kinds_are_its_rows_kinds_in_order_each_once(
            picks in proptest::collection::vec((0usize..64, 1usize..40), 0..80)
        ) {
            use caltrail_events::{CalType, ProductVersion};
            use crate::rows::{IssueRow, ServerStatus};
            let statuses = [
                ServerStatus::NeverActivated,
                ServerStatus::Activated,
                ServerStatus::Deactivated,
                ServerStatus::Decommissioned,
            ];
            let versions = ProductVersion::ALL;
            let mut rows = Vec::new();
            for (pick, run) in picks {
                let row = IssueRow {
                    seq: rows.len() as u64,
                    id: None,
                    at: now(),
                    server: Sym::for_tests(0),
                    keypack: Sym::for_tests(1),
                    holder: Sym::for_tests(2),
                    cal_type: [None, Some(CalType::ALL[0]), Some(CalType::ALL[1])][pick % 3],
                    product_version: versions.get(pick % 5).copied(),
                    temporary: pick % 2 == 0,
                    renewal: pick % 7 < 3,
                    session_host: None,
                    session_host_version: versions.get(pick / 8 % 5).copied(),
                    server_status: statuses[pick / 16 % 4],
                };
                rows.extend(std::iter::repeat_n(row, run));
            }
            let expected: std::collections::BTreeSet<_> = rows.iter().map(IssueRow::kind).collect();
            proptest::prop_assert_eq!(super::kinds_of(&rows), expected.into_iter().collect::<Vec<_>>());
        }
    }

    #[test]
    fn issues_left_in_the_file_read_back_as_folded_across_blocks() {
        use crate::issues::BLOCK_ROWS;
        let n = 2 * BLOCK_ROWS + 5;
        let events = issues_history(n + 1_000);
        let (before, after) = events.split_at(n + 2);
        let whole = folded(&events);
        let rows = |state: &Replay, start: usize, end: usize| {
            format!("{:?}", state.issues.range(start, end).unwrap())
        };
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&snapshot_bytes(&folded(before), before.len())).unwrap();
        let mut reopened = std::fs::File::open(file.path()).unwrap();
        let header = SnapshotHeader::read(&mut reopened).unwrap();
        let mut state =
            Replay::read_snapshot(reopened, &header, AsOf::Latest, now(), 1_000).unwrap();
        assert_eq!(state.issues.len(), n);
        assert!(state.issues.folded().is_empty());
        state.fold(entries(after, before.len() + 1));
        assert_eq!((state.issues.len(), state.issues.folded().len()), (n + 1_000, 1_000));
        // Within a block, across blocks, across the stored rows and those folded since, past
        // the end.
        for (start, end) in [
            (0, BLOCK_ROWS),
            (10, 20),
            (BLOCK_ROWS - 3, BLOCK_ROWS + 4),
            (BLOCK_ROWS, 2 * BLOCK_ROWS),
            (2 * BLOCK_ROWS, 3 * BLOCK_ROWS),
            (n - 2, n + 3),
            (n + 10, n + 2_000),
            (0, n + 1_000),
        ] {
            assert_eq!(rows(&state, start, end), rows(&whole, start, end), "{start}..{end}");
        }
        assert_eq!(state.state_digest().unwrap(), whole.state_digest().unwrap());
        // Written again, the state has the bytes of the one replayed from the start.
        assert_eq!(snapshot_bytes(&state, events.len()), snapshot_bytes(&whole, events.len()));
        // A block changed in the file once the state was read is an error, never other rows.
        let at = super::HEADER_LEN as u64 + 100;
        let mut bytes = std::fs::read(file.path()).unwrap();
        bytes[at as usize] ^= 1;
        std::fs::write(file.path(), &bytes).unwrap();
        assert!(matches!(state.issues.range(0, 5), Err(SnapshotError::Damaged(_))));
        assert_eq!(
            rows(&state, BLOCK_ROWS, BLOCK_ROWS + 5),
            rows(&whole, BLOCK_ROWS, BLOCK_ROWS + 5)
        );
        assert!(state.state_digest().is_err());
    }

    #[test]
    fn a_replay_that_spills_its_issues_writes_the_snapshot_a_replay_in_memory_writes() {
        use crate::issues::BLOCK_ROWS;
        // Blocks and a few rows more; whole blocks only.
        for n in [2 * BLOCK_ROWS + 7, 2 * BLOCK_ROWS, 10] {
            let events = issues_history(n);
            let in_memory = folded(&events);
            let file = tempfile::NamedTempFile::new().unwrap();
            let mut spilled = Replay::new(AsOf::Latest, now(), false);
            spilled.spill_issues_to(file.reopen().unwrap());
            spilled.reserve(events.len());
            spilled.fold(entries(&events, 1));
            // Only the rows of a block not yet full are in memory.
            assert_eq!(spilled.issues.folded().len(), n % BLOCK_ROWS, "{n}");
            assert_eq!(spilled.issues.len(), n);
            assert_eq!(
                format!("{:?}", spilled.issues.range(0, n).unwrap()),
                format!("{:?}", in_memory.issues.range(0, n).unwrap()),
                "{n}"
            );
            spilled.write_spilled_snapshot(key(events.len())).unwrap();
            let want = snapshot_bytes(&in_memory, events.len());
            assert_eq!(std::fs::read(file.path()).unwrap(), want, "{n}");
            assert_eq!(spilled.state_digest().unwrap(), in_memory.state_digest().unwrap());
            assert_eq!(judged(read(&want).unwrap()), judged(spilled), "{n}");
        }
        // A state read from a snapshot, or with rows already, does not spill.
        let events = issues_history(5);
        let mut state = folded(&events);
        state.spill_issues_to(tempfile::tempfile().unwrap());
        assert!(matches!(
            state.write_spilled_snapshot(key(5)),
            Err(SnapshotError::NotSnapshottable(_))
        ));
    }

    #[test]
    fn only_an_unfinished_state_without_events_is_a_snapshot() {
        let events = &stories()[0].1;
        let mut out = Cursor::new(Vec::new());
        let finished = folded(events).finish();
        assert!(matches!(
            finished.write_snapshot(&mut out, key(1)),
            Err(SnapshotError::NotSnapshottable(_))
        ));
        let mut with_events = Replay::new(AsOf::Latest, now(), true);
        with_events.fold(entries(events, 1));
        assert!(matches!(
            with_events.write_snapshot(&mut out, key(1)),
            Err(SnapshotError::NotSnapshottable(_))
        ));
    }
}
