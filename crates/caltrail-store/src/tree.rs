//! The Merkle tree beside the chain (RFC 6962 over the stored entry bytes, leaf `seq - 1`):
//! the hash of each full block of `TILE` entries is stored in `tree_tiles`, kept up in the
//! append's transaction, and every other node is recomputed from them and from the entries.
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

/// The tree's tables, created on first use so a ledger written before them gets them without
/// any entry rewritten.
pub(crate) const TREE_SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS tree_tiles (
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
    tiles_from_entries(conn, stored, from_batch, |tile, hash| {
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
    })
}

/// Subtree hashes from the stored tiles, and from the entries below a tile's size.
pub struct StoredTree<'c> {
    conn: &'c Connection,
    tiles: Vec<Hash>,
}

impl<'c> StoredTree<'c> {
    pub(crate) fn load(conn: &'c Connection) -> rusqlite::Result<StoredTree<'c>> {
        let mut tiles = Vec::new();
        if has_table(conn, "tree_tiles")? {
            let mut statement = conn.prepare("SELECT tile, hash FROM tree_tiles ORDER BY tile")?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                let tile: i64 = row.get(0)?;
                let hash: Vec<u8> = row.get(1)?;
                // Tiles are stored in order from 0; a gap or a bad length ends what is used,
                // and the rest is read from the entries.
                let Ok(hash) = Hash::try_from(hash.as_slice()) else { break };
                if tile as usize != tiles.len() {
                    break;
                }
                tiles.push(hash);
            }
        }
        Ok(StoredTree { conn, tiles })
    }
}

impl Subtrees for StoredTree<'_> {
    type Error = rusqlite::Error;
    fn subtree(&mut self, start: u64, end: u64) -> rusqlite::Result<Hash> {
        let n = end - start;
        let (first, last) = (start / TILE, end / TILE);
        if n >= TILE
            && n.is_power_of_two()
            && start.is_multiple_of(TILE)
            && last <= self.tiles.len() as u64
        {
            return Ok(merkle::root_of_leaves(&self.tiles[first as usize..last as usize]));
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
        tiles_from_entries(conn, 0, size / TILE, |_, hash| {
            tiles.push(hash);
            Ok(())
        })
        .map_err(|e| self.classify(e))?;
        Ok(StoredTree { conn, tiles })
    }

    /// The stored tiles that differ from the entries: `(tile, reason)`.
    pub fn check_tiles(&self) -> Result<Vec<(u64, String)>, StoreError> {
        let n = self.head()?.n_events;
        let stored = self.tree()?;
        let fresh = self.recomputed_tree(n)?;
        let mut problems = Vec::new();
        for (tile, hash) in fresh.tiles.iter().enumerate() {
            match stored.tiles.get(tile) {
                Some(s) if s == hash => {}
                Some(_) => {
                    problems.push((tile as u64, "its hash differs from its entries'".to_owned()));
                }
                None => {}
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
