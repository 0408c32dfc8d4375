//! The Merkle tree beside the chain (RFC 6962 over the stored entry bytes, leaf `seq - 1`):
//! the hash of each full block of `TILE` entries is stored in `tree_tiles`, and of each full
//! block of `TILE` of those in `tree_tiles_1`, kept up in the append's transaction; every
//! other node is recomputed from them and from the entries, so a proof reads a few hundred
//! hashes, not every tile.
//! Signed checkpoints are kept in `checkpoints`. Neither table is part of the chain: the
//! tree's hashes are checked against the entries by `verify --deep` and by
//! `verify --checkpoint`, which recompute them.

use caltrail_tlog::merkle::{self, Hash, Subtrees};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::StoreError;
use crate::ledger::Ledger;

/// Entries per stored tile: a proof reads at most one tile's entries, and a 10M-entry ledger
/// stores 39,063 hashes.
pub const TILE: u64 = 256;

/// Entries under one hash of `tree_tiles_1`: `TILE` tiles.
const UPPER: u64 = TILE * TILE;

/// The tree's tables, created on first use so a ledger written before them gets them without
/// any entry rewritten.
pub(crate) const TREE_SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS tree_tiles (
    tile INTEGER PRIMARY KEY CHECK (tile >= 0),
    hash BLOB    NOT NULL CHECK (length(hash) = 32)
) STRICT;
CREATE TABLE IF NOT EXISTS tree_tiles_1 (
    tile INTEGER PRIMARY KEY CHECK (tile >= 0),
    hash BLOB    NOT NULL CHECK (length(hash) = 32)
) STRICT;
CREATE TABLE IF NOT EXISTS checkpoints (
    n    INTEGER PRIMARY KEY,
    size INTEGER NOT NULL,
    note TEXT    NOT NULL
) STRICT;";

fn has_table(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
        [name],
        |row| row.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// The leaf hashes of the entries `start..end` (0-based leaves) read from the table.
fn leaf_hashes(conn: &Connection, start: u64, end: u64) -> rusqlite::Result<Vec<Hash>> {
    let mut statement =
        conn.prepare_cached("SELECT body FROM entries WHERE seq > ?1 AND seq <= ?2 ORDER BY seq")?;
    let mut rows = statement.query(params![start as i64, end as i64])?;
    let mut leaves = Vec::with_capacity((end - start) as usize);
    while let Some(row) = rows.next()? {
        leaves.push(merkle::leaf_hash(row.get_ref(0)?.as_blob()?));
    }
    Ok(leaves)
}

/// The hash of the entries `start..end` (0-based leaves) read from the table.
fn hash_entries(conn: &Connection, start: u64, end: u64) -> rusqlite::Result<Hash> {
    Ok(merkle::root_of_leaves(&leaf_hashes(conn, start, end)?))
}

/// The tiles an append completes, from the leaf hashes of its entries as they are inserted.
pub(crate) struct TileBuilder {
    /// The tile the batch's first entry falls in.
    first_tile: u64,
    /// The leaves of the tile being filled.
    leaves: Vec<Hash>,
    /// The hashes of the tiles completed, from `first_tile` on.
    tiles: Vec<Hash>,
}

impl TileBuilder {
    /// For a batch whose first entry is leaf `batch_start`: the leaves before it in its tile
    /// are read from the table.
    pub(crate) fn start(conn: &Connection, batch_start: u64) -> rusqlite::Result<TileBuilder> {
        let first_tile = batch_start / TILE;
        let leaves = leaf_hashes(conn, first_tile * TILE, batch_start)?;
        Ok(TileBuilder { first_tile, leaves, tiles: Vec::new() })
    }

    pub(crate) fn push(&mut self, leaf: Hash) {
        self.leaves.push(leaf);
        if self.leaves.len() == TILE as usize {
            self.tiles.push(merkle::root_of_leaves(&self.leaves));
            self.leaves.clear();
        }
    }
}

/// The hashes of tiles `first..end`, from one ordered read of their entries: a ledger's whole
/// tree is one pass over the table, not a query per tile.
fn tiles_from_entries(
    conn: &Connection,
    first: u64,
    end: u64,
    mut each: impl FnMut(u64, Hash) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    /// Whole tiles read on this thread and hashed on the workers, in order.
    struct Tiles {
        first: u64,
        bytes: Vec<u8>,
        /// Where each entry's bytes end in `bytes`; a multiple of `TILE` entries.
        ends: Vec<usize>,
    }
    const TILES_PER_CHUNK: u64 = 16;
    if first >= end {
        return Ok(());
    }
    let mut statement =
        conn.prepare("SELECT seq, body FROM entries WHERE seq > ?1 AND seq <= ?2 ORDER BY seq")?;
    let mut rows = statement.query(params![(first * TILE) as i64, (end * TILE) as i64])?;
    let mut tile = first;
    let mut expected = first * TILE + 1;
    let mut stopped = false;
    crate::pipeline::in_order(
        || -> rusqlite::Result<Option<Tiles>> {
            let mut chunk = Tiles { first: tile, bytes: Vec::new(), ends: Vec::new() };
            let limit = (TILES_PER_CHUNK * TILE) as usize;
            while !stopped && chunk.ends.len() < limit {
                let Some(row) = rows.next()? else { break };
                let seq: i64 = row.get(0)?;
                if seq as u64 != expected {
                    // A gap: the chain check reports it; the tree stops where the entries do.
                    stopped = true;
                    break;
                }
                expected += 1;
                chunk.bytes.extend_from_slice(row.get_ref(1)?.as_blob()?);
                chunk.ends.push(chunk.bytes.len());
            }
            // Only whole tiles are hashed; the entries of a partial one wait for their block.
            let whole = chunk.ends.len() - chunk.ends.len() % TILE as usize;
            chunk.ends.truncate(whole);
            if whole < limit {
                stopped = true;
            }
            tile += (whole as u64) / TILE;
            Ok((!chunk.ends.is_empty()).then_some(chunk))
        },
        |chunk: Tiles| -> Vec<(u64, Hash)> {
            let mut start = 0;
            let leaves: Vec<Hash> = chunk
                .ends
                .iter()
                .map(|&end| {
                    let leaf = merkle::leaf_hash(&chunk.bytes[start..end]);
                    start = end;
                    leaf
                })
                .collect();
            leaves
                .chunks(TILE as usize)
                .enumerate()
                .map(|(i, block)| (chunk.first + i as u64, merkle::root_of_leaves(block)))
                .collect()
        },
        |hashed: &mut Vec<(u64, Hash)>| -> rusqlite::Result<()> {
            for &(tile, hash) in hashed.iter() {
                each(tile, hash)?;
            }
            Ok(())
        },
    )
}

/// Ranges of at least this many tiles are split between one connection per core: building a
/// whole tree waits on reading the entries out of SQLite, which one connection does on one
/// thread, more than on hashing them.
const SPLIT_TILES: u64 = 1024;

/// [`tiles_from_entries`] for entries committed before `conn`'s transaction, if it has one:
/// a large range is split into parts read on connections of their own, in parallel, and handed
/// to `each` in order. A part that stops short (a gap in the entries) ends the range there, as
/// one read would. A part whose connection cannot be opened (a ledger on read-only media,
/// which `conn` opened as immutable) is read on `conn` after the others.
fn tiles_from_committed_entries(
    conn: &Connection,
    first: u64,
    end: u64,
    each: impl FnMut(u64, Hash) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let n_parts = std::thread::available_parallelism().map_or(1, std::num::NonZero::get) as u64;
    let n_parts = if end.saturating_sub(first) < SPLIT_TILES { 1 } else { n_parts };
    tiles_in_parts(conn, first, end, n_parts, each)
}

/// [`tiles_from_committed_entries`] in `n_parts` parts.
fn tiles_in_parts(
    conn: &Connection,
    first: u64,
    end: u64,
    n_parts: u64,
    mut each: impl FnMut(u64, Hash) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let path = conn.path().filter(|path| !path.is_empty()).map(std::path::PathBuf::from);
    let Some(path) = path.filter(|_| n_parts > 1 && end > first) else {
        return tiles_from_entries(conn, first, end, each);
    };
    let size = (end - first).div_ceil(n_parts);
    let parts: Vec<(u64, u64)> = (0..n_parts)
        .map(|i| ((first + i * size).min(end), (first + (i + 1) * size).min(end)))
        .filter(|(start, stop)| start < stop)
        .collect();
    let read = |conn: &Connection, (start, stop): (u64, u64)| {
        let mut tiles = Vec::with_capacity((stop - start) as usize);
        tiles_from_entries(conn, start, stop, |_, hash| {
            tiles.push(hash);
            Ok(())
        })
        .map(|()| tiles)
    };
    let read = &read;
    let results: Vec<rusqlite::Result<Vec<Hash>>> = std::thread::scope(|scope| {
        let others: Vec<_> = parts[1..]
            .iter()
            .map(|&part| {
                let path = &path;
                scope.spawn(move || {
                    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
                    let other = Connection::open_with_flags(path, flags)
                        .and_then(|other| {
                            other.busy_timeout(std::time::Duration::from_secs(5))?;
                            Ok(other)
                        })
                        .ok()?;
                    Some(read(&other, part))
                })
            })
            .collect();
        let mut results = vec![read(conn, parts[0])];
        for (other, &part) in others.into_iter().zip(&parts[1..]) {
            let read_apart = other.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            results.push(read_apart.unwrap_or_else(|| read(conn, part)));
        }
        results
    });
    for (&(start, stop), tiles) in parts.iter().zip(results) {
        let tiles = tiles?;
        let whole = tiles.len() as u64 == stop - start;
        for (i, hash) in tiles.into_iter().enumerate() {
            each(start + i as u64, hash)?;
        }
        if !whole {
            break;
        }
    }
    Ok(())
}

/// Stores the hash of every full block of entries not stored yet, up to `n_entries`: in the
/// append's transaction (from the tiles the batch built, and from the table for any tile
/// before them), and on first use for a ledger written before the tree.
pub(crate) fn update_tiles(
    conn: &Connection,
    n_entries: u64,
    built: Option<&TileBuilder>,
) -> rusqlite::Result<()> {
    conn.execute_batch(TREE_SCHEMA)?;
    let stored: i64 = conn.query_row("SELECT count(*) FROM tree_tiles", [], |row| row.get(0))?;
    let stored = stored as u64;
    let end = n_entries / TILE;
    let mut insert = conn.prepare_cached("INSERT INTO tree_tiles (tile, hash) VALUES (?1, ?2)")?;
    let from_batch = built.map_or(end, |b| b.first_tile.clamp(stored, end));
    // The entries before the batch's first tile were committed before its transaction.
    tiles_from_committed_entries(conn, stored, from_batch, |tile, hash| {
        insert.execute(params![tile as i64, &hash[..]]).map(|_| ())
    })?;
    let mut next = from_batch;
    if let Some(built) = built {
        // The builder has every tile the batch completed, from its first on; any other is read
        // from the table.
        while let Some(hash) =
            next.checked_sub(built.first_tile).and_then(|i| built.tiles.get(i as usize))
        {
            if next == end {
                break;
            }
            insert.execute(params![next as i64, &hash[..]])?;
            next += 1;
        }
    }
    tiles_from_entries(conn, next, end, |tile, hash| {
        insert.execute(params![tile as i64, &hash[..]]).map(|_| ())
    })?;
    update_upper(conn, end)
}

/// Stores the hash of every full block of `TILE` tiles not stored yet, from the first
/// `n_tiles` tiles of `tree_tiles`.
fn update_upper(conn: &Connection, n_tiles: u64) -> rusqlite::Result<()> {
    let stored: i64 = conn.query_row("SELECT count(*) FROM tree_tiles_1", [], |row| row.get(0))?;
    let mut insert =
        conn.prepare_cached("INSERT INTO tree_tiles_1 (tile, hash) VALUES (?1, ?2)")?;
    for block in stored as u64..n_tiles / TILE {
        let Some(tiles) = stored_tiles(conn, block * TILE, (block + 1) * TILE)? else {
            // A tile missing or malformed: the block is left to the tiles and the entries.
            return Ok(());
        };
        insert.execute(params![block as i64, &merkle::root_of_leaves(&tiles)[..]])?;
    }
    Ok(())
}

/// Tiles `first..last` as stored, or `None` when one is missing or malformed.
fn stored_tiles(conn: &Connection, first: u64, last: u64) -> rusqlite::Result<Option<Vec<Hash>>> {
    let mut statement = conn.prepare_cached(
        "SELECT tile, hash FROM tree_tiles WHERE tile >= ?1 AND tile < ?2 ORDER BY tile",
    )?;
    let mut rows = statement.query(params![first as i64, last as i64])?;
    let mut tiles = Vec::with_capacity((last - first) as usize);
    while let Some(row) = rows.next()? {
        let tile: i64 = row.get(0)?;
        let Ok(hash) = Hash::try_from(row.get_ref(1)?.as_blob()?) else { return Ok(None) };
        if tile as u64 != first + tiles.len() as u64 {
            return Ok(None);
        }
        tiles.push(hash);
    }
    Ok((tiles.len() as u64 == last - first).then_some(tiles))
}

/// Subtree hashes from the stored tiles (the upper level where a subtree covers whole blocks of
/// it, else the tiles, read by range as a subtree needs them), and from the entries below a
/// tile's size.
pub struct StoredTree<'c> {
    conn: &'c Connection,
    /// Every tile, when the tree was recomputed from the entries; else tiles are read from
    /// `tree_tiles` by range.
    tiles: Option<Vec<Hash>>,
    /// The tiles that may be used: those stored in order from 0.
    n_tiles: u64,
    /// The hashes of whole blocks of `TILE` tiles, in order from 0.
    upper: Vec<Hash>,
}

impl<'c> StoredTree<'c> {
    pub(crate) fn load(conn: &'c Connection) -> rusqlite::Result<StoredTree<'c>> {
        let mut tree = StoredTree { conn, tiles: None, n_tiles: 0, upper: Vec::new() };
        if has_table(conn, "tree_tiles")? {
            let last: Option<i64> =
                conn.query_row("SELECT max(tile) FROM tree_tiles", [], |row| row.get(0))?;
            tree.n_tiles = last.map_or(0, |t| t as u64 + 1);
        }
        if has_table(conn, "tree_tiles_1")? {
            let mut statement =
                conn.prepare("SELECT tile, hash FROM tree_tiles_1 ORDER BY tile")?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                let tile: i64 = row.get(0)?;
                // Stored in order from 0; a gap or a bad length ends what is used, and the rest
                // comes from the tiles.
                let Ok(hash) = Hash::try_from(row.get_ref(1)?.as_blob()?) else { break };
                if tile as usize != tree.upper.len() {
                    break;
                }
                tree.upper.push(hash);
            }
        }
        Ok(tree)
    }

    /// Every stored tile in order from 0, up to the first missing or malformed one.
    fn all_stored_tiles(&self) -> rusqlite::Result<Vec<Hash>> {
        let mut tiles = Vec::new();
        if has_table(self.conn, "tree_tiles")? {
            let mut statement =
                self.conn.prepare("SELECT tile, hash FROM tree_tiles ORDER BY tile")?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                let tile: i64 = row.get(0)?;
                let Ok(hash) = Hash::try_from(row.get_ref(1)?.as_blob()?) else { break };
                if tile as usize != tiles.len() {
                    break;
                }
                tiles.push(hash);
            }
        }
        Ok(tiles)
    }

    /// Tiles `first..last`, or `None` where one is not stored whole.
    fn tiles(&self, first: u64, last: u64) -> rusqlite::Result<Option<Vec<Hash>>> {
        match &self.tiles {
            Some(tiles) => Ok(tiles.get(first as usize..last as usize).map(<[Hash]>::to_vec)),
            None if last <= self.n_tiles => stored_tiles(self.conn, first, last),
            None => Ok(None),
        }
    }
}

impl Subtrees for StoredTree<'_> {
    type Error = rusqlite::Error;
    fn subtree(&mut self, start: u64, end: u64) -> rusqlite::Result<Hash> {
        let n = end - start;
        let aligned = |size: u64| n >= size && n.is_power_of_two() && start.is_multiple_of(size);
        if aligned(UPPER) && end / UPPER <= self.upper.len() as u64 {
            return Ok(merkle::root_of_leaves(
                &self.upper[(start / UPPER) as usize..(end / UPPER) as usize],
            ));
        }
        if aligned(TILE)
            && let Some(tiles) = self.tiles(start / TILE, end / TILE)?
        {
            return Ok(merkle::root_of_leaves(&tiles));
        }
        if n > TILE || (start / TILE != (end - 1) / TILE) {
            let k = merkle::split(n);
            let left = self.subtree(start, start + k)?;
            let right = self.subtree(start + k, end)?;
            return Ok(merkle::node_hash(&left, &right));
        }
        hash_entries(self.conn, start, end)
    }
}

/// A stored hash of the tree that differs from what the entries give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileProblem {
    /// 0 for `tree_tiles` (`TILE` entries each), 1 for `tree_tiles_1` (`TILE` tiles each).
    pub level: u8,
    /// The tile's number in its level.
    pub index: u64,
    /// What is wrong.
    pub why: String,
}

impl TileProblem {
    /// The entries (`seq`, first and last) under the tile.
    pub fn entries(&self) -> (u64, u64) {
        let size = if self.level == 0 { TILE } else { UPPER };
        (self.index * size + 1, (self.index + 1) * size)
    }
}

impl Ledger {
    /// Builds the tree's missing tiles (a ledger written before the tree has none).
    pub fn build_tree(&mut self) -> Result<(), StoreError> {
        let n = self.head()?.n_events;
        let path = self.path().to_owned();
        let tx = self
            .connection_mut()
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| StoreError::Sqlite { path: path.clone(), error: e })?;
        update_tiles(&tx, n, None)
            .map_err(|e| StoreError::Sqlite { path: path.clone(), error: e })?;
        tx.commit().map_err(|e| StoreError::Sqlite { path, error: e })
    }

    /// The stored tree, to compute roots and proofs from.
    pub fn tree(&self) -> Result<StoredTree<'_>, StoreError> {
        StoredTree::load(self.connection()).map_err(|e| self.classify(e))
    }

    /// The tree with every tile recomputed from the entries up to `size`, trusting nothing
    /// stored: what `verify` checks the stored tiles and a checkpoint against.
    pub fn recomputed_tree(&self, size: u64) -> Result<StoredTree<'_>, StoreError> {
        let conn = self.connection();
        let mut tiles = Vec::new();
        tiles_from_committed_entries(conn, 0, size / TILE, |_, hash| {
            tiles.push(hash);
            Ok(())
        })
        .map_err(|e| self.classify(e))?;
        let upper = tiles.chunks_exact(TILE as usize).map(merkle::root_of_leaves).collect();
        Ok(StoredTree { conn, n_tiles: tiles.len() as u64, tiles: Some(tiles), upper })
    }

    /// The stored tiles, of either level, that differ from the entries.
    pub fn check_tiles(&self) -> Result<Vec<TileProblem>, StoreError> {
        let n = self.head()?.n_events;
        let stored = self.tree()?;
        let stored_tiles = stored.all_stored_tiles().map_err(|e| self.classify(e))?;
        let fresh = self.recomputed_tree(n)?;
        let mut problems = Vec::new();
        for (tile, hash) in fresh.tiles.iter().flatten().enumerate() {
            if stored_tiles.get(tile).is_some_and(|s| s != hash) {
                problems.push(TileProblem {
                    level: 0,
                    index: tile as u64,
                    why: "its hash differs from its entries'".to_owned(),
                });
            }
        }
        for (block, hash) in fresh.upper.iter().enumerate() {
            if stored.upper.get(block).is_some_and(|s| s != hash) {
                problems.push(TileProblem {
                    level: 1,
                    index: block as u64,
                    why: "its hash differs from its entries'".to_owned(),
                });
            }
        }
        Ok(problems)
    }

    /// The stored bytes of entry `seq`.
    pub fn entry_bytes(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.connection()
            .query_row("SELECT body FROM entries WHERE seq = ?1", [seq as i64], |row| row.get(0))
            .optional()
            .map_err(|e| self.classify(e))
    }

    /// The `seq` of the event with this id.
    pub fn seq_of(&self, id: &str) -> Result<Option<u64>, StoreError> {
        self.connection()
            .query_row("SELECT seq FROM entries WHERE id = ?1", [id], |row| row.get::<_, i64>(0))
            .optional()
            .map(|s| s.map(|s| s as u64))
            .map_err(|e| self.classify(e))
    }

    /// Keeps a signed checkpoint in the ledger (outside the chain).
    pub fn store_checkpoint(&mut self, size: u64, note: &str) -> Result<(), StoreError> {
        let path = self.path().to_owned();
        let sqlite = |e| StoreError::Sqlite { path: path.clone(), error: e };
        let conn = self.connection();
        conn.execute_batch(TREE_SCHEMA).map_err(sqlite)?;
        conn.execute(
            "INSERT INTO checkpoints (size, note) VALUES (?1, ?2)",
            params![size as i64, note],
        )
        .map_err(sqlite)?;
        Ok(())
    }

    /// The latest checkpoint stored, if any.
    pub fn latest_checkpoint(&self) -> Result<Option<String>, StoreError> {
        if !has_table(self.connection(), "checkpoints").map_err(|e| self.classify(e))? {
            return Ok(None);
        }
        self.connection()
            .query_row("SELECT note FROM checkpoints ORDER BY n DESC LIMIT 1", [], |row| row.get(0))
            .optional()
            .map_err(|e| self.classify(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(n: u64) -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open_or_create(&dir.path().join("l.db")).unwrap();
        let events: Vec<caltrail_events::Event> = (0..n)
            .map(|i| {
                let line = format!(
                    r#"{{"id":"e{i}","type":"server.deactivated","at":"2025-01-01T00:00:00Z","data":{{"server":"ls{i}","method":"telephone"}}}}"#
                );
                caltrail_events::Event::from_json(&line).unwrap()
            })
            .collect();
        ledger.append(&events, caltrail_events::Timestamp::from_micros(0).unwrap()).unwrap();
        (dir, ledger)
    }

    fn read(conn: &Connection, first: u64, end: u64, n_parts: u64) -> Vec<(u64, Hash)> {
        let mut tiles = Vec::new();
        tiles_in_parts(conn, first, end, n_parts, |tile, hash| {
            tiles.push((tile, hash));
            Ok(())
        })
        .unwrap();
        tiles
    }

    /// Read in parts on connections of their own, the tiles are those one read gives, in
    /// order, for ranges within, across and past the end of the entries, also when the parts'
    /// connections cannot open; a gap ends the range at the part that meets it, and no later
    /// part's tiles follow.
    #[test]
    fn tiles_read_in_parts_are_those_of_one_read() {
        let (_dir, mut ledger) = ledger(9 * TILE + 37);
        let conn = ledger.connection();
        let whole = read(conn, 0, 9, 1);
        assert_eq!(whole.len(), 9);
        for (first, end) in [(0, 9), (0, 1), (3, 9), (2, 5), (0, 12), (7, 20), (9, 12)] {
            let one = read(conn, first, end, 1);
            assert_eq!(one, whole[first.min(9) as usize..end.min(9) as usize], "{first}..{end}");
            for n_parts in [2, 3, 5] {
                assert_eq!(read(conn, first, end, n_parts), one, "{first}..{end} in {n_parts}");
            }
        }
        // A part whose connection cannot open is read on the caller's: here the file's name is
        // gone, which the open connection does not need.
        let moved = ledger.path().with_extension("moved");
        std::fs::rename(ledger.path(), &moved).unwrap();
        for n_parts in [2, 3, 5] {
            assert_eq!(read(ledger.connection(), 0, 9, n_parts), whole, "moved, in {n_parts}");
        }
        std::fs::rename(&moved, ledger.path()).unwrap();
        let conn = ledger.connection_mut();
        conn.execute_batch("DROP TRIGGER entries_no_delete; DELETE FROM entries WHERE seq = 300")
            .unwrap();
        let conn = ledger.connection();
        assert_eq!(read(conn, 0, 9, 1), whole[..1]);
        for n_parts in [2, 3, 5] {
            assert_eq!(read(conn, 0, 9, n_parts), whole[..1], "in {n_parts}");
        }
    }
}
