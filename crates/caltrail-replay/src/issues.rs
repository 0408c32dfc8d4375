//! The `issues` table: a row per `cal.issued`, nearly every event of a large estate. The rows
//! a snapshot holds stay in its file and are read back a block at a time when a scan asks for
//! them, each checked against the hash the snapshot's body holds for it; only the rows folded
//! since are in memory. So a large state loads without its largest table, and a scan of that
//! table holds a block of it at a time. A replay from the first entry that will be written as
//! a snapshot puts each block in the snapshot's file as soon as it is full (`spill_to`), so it
//! never holds the table whole either.

use std::borrow::Cow;
use std::fs::File;
use std::io;

use crate::rows::{IssueKind, IssueRow};
use crate::snapshot::{
    BlockListing, HEADER_LEN, SnapshotError, decode_issue_block, encode_issue_block,
};

/// Reads into `buf` from `offset` of `file`, without the file's position: several threads read
/// one snapshot's file at once. Gives how many bytes were read; 0 at its end.
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    #[cfg(unix)]
    return std::os::unix::fs::FileExt::read_at(file, buf, offset);
    #[cfg(windows)]
    return std::os::windows::fs::FileExt::seek_read(file, buf, offset);
}

/// Fills `buf` from `offset` of `file` (see `read_at`).
pub(crate) fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match read_at(file, buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes all of `buf` at `offset` of `file`, without the file's position.
fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        #[cfg(unix)]
        let written = std::os::unix::fs::FileExt::write_at(file, buf, offset);
        #[cfg(windows)]
        let written = std::os::windows::fs::FileExt::seek_write(file, buf, offset);
        match written {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Rows in each stored block but the last: a batch of the SQL tables, so that a batch is a
/// block.
pub const BLOCK_ROWS: usize = 1 << 16;

/// The rows of the `issues` table, in the order they were folded.
#[derive(Debug, Default)]
pub struct Issues {
    /// The first rows, left in a snapshot's file.
    pub(crate) stored: Option<StoredIssues>,
    /// The rows after them, folded in this process.
    pub(crate) rows: Vec<IssueRow>,
    /// Whether each full block of `rows` goes on to `stored`'s file: until a write fails.
    pub(crate) spilling: bool,
    /// The bytes of the block being spilled, kept for the next.
    spill_bytes: Vec<u8>,
}

/// Where a snapshot's rows are, and the hashes they must have.
#[derive(Debug)]
pub(crate) struct StoredIssues {
    /// The snapshot, open: a snapshot written meanwhile replaces its name, not these bytes.
    /// Read and written at offsets (`read_at`, `write_all_at`), so that scans running at once
    /// read their blocks at once.
    pub(crate) file: File,
    pub(crate) blocks: Vec<StoredBlock>,
    pub(crate) n_rows: usize,
    /// How many texts the state had when it was read: every handle a stored row holds is
    /// below it.
    pub(crate) n_texts: usize,
}

/// One block of stored rows: its place in the file, and what the body lists of it.
#[derive(Debug)]
pub(crate) struct StoredBlock {
    pub(crate) offset: u64,
    pub(crate) listing: BlockListing,
}

impl StoredIssues {
    /// The bytes of block `i`, as the file holds them now.
    pub(crate) fn block_bytes(&self, i: usize) -> Result<Vec<u8>, SnapshotError> {
        let block = &self.blocks[i];
        let len = usize::try_from(block.listing.len)
            .map_err(|_| SnapshotError::Damaged("a block of its issues is too long".into()))?;
        let mut bytes = vec![0u8; len];
        read_exact_at(&self.file, &mut bytes, block.offset)?;
        Ok(bytes)
    }

    /// How many rows block `i` holds.
    fn rows_in(&self, i: usize) -> usize {
        (self.n_rows - i * BLOCK_ROWS).min(BLOCK_ROWS)
    }

    /// The rows of block `i`, read from the file and checked against its hash: a file changed
    /// since the snapshot was read gives an error, never other rows.
    fn block(&self, i: usize) -> Result<Vec<IssueRow>, SnapshotError> {
        let bytes = self.block_bytes(i)?;
        decode_issue_block(&bytes, self.rows_in(i), &self.blocks[i].listing, self.n_texts)
    }
}

impl Issues {
    /// Rows left in a snapshot's file, with room for `more` rows to be folded after them.
    pub(crate) fn stored(stored: StoredIssues, more: usize) -> Issues {
        Issues {
            stored: Some(stored),
            rows: Vec::with_capacity(more),
            spilling: false,
            spill_bytes: Vec::new(),
        }
    }

    /// Puts each block of rows folded from now on in `file`, from byte `HEADER_LEN` on, as
    /// soon as it is full: where a snapshot's blocks go. Only for a table with no row yet;
    /// `Replay::write_spilled_snapshot` completes the file.
    pub(crate) fn spill_to(&mut self, file: File) {
        if self.is_empty() && self.stored.is_none() {
            self.stored = Some(StoredIssues { file, blocks: Vec::new(), n_rows: 0, n_texts: 0 });
            self.spilling = true;
        }
    }

    /// The blocks written to the file so far, whole: the rows still in memory are fewer than a
    /// block.
    pub(crate) fn spilled(&self) -> Option<&StoredIssues> {
        self.stored.as_ref().filter(|_| self.spilling)
    }

    /// Writes the full block in `rows` to the spill file and lets the rows go; keeps them, and
    /// stops spilling, if the write fails (a full disk): the table is then whole in memory
    /// from there on, as without a spill file.
    fn spill(&mut self, n_texts: usize) {
        let Some(stored) = self.stored.as_mut() else { return };
        let offset = HEADER_LEN as u64 + stored.blocks.iter().map(|b| b.listing.len).sum::<u64>();
        let written = encode_issue_block(&self.rows, &mut self.spill_bytes).and_then(|listing| {
            write_all_at(&stored.file, &self.spill_bytes, offset)?;
            Ok(listing)
        });
        match written {
            Ok(listing) => {
                stored.blocks.push(StoredBlock { offset, listing });
                stored.n_rows += self.rows.len();
                stored.n_texts = n_texts;
                self.rows.clear();
            }
            Err(_) => self.spilling = false,
        }
    }

    /// How many rows the table has.
    pub fn len(&self) -> usize {
        self.n_stored() + self.rows.len()
    }

    /// Whether the table has no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn n_stored(&self) -> usize {
        self.stored.as_ref().map_or(0, |stored| stored.n_rows)
    }

    /// The rows folded in this process: every row, unless the state was read from a snapshot.
    pub fn folded(&self) -> &[IssueRow] {
        &self.rows
    }

    /// Adds a row folded, whose handles are below `n_texts`.
    pub(crate) fn push(&mut self, row: IssueRow, n_texts: usize) {
        self.rows.push(row);
        if self.spilling && self.rows.len() == BLOCK_ROWS {
            self.spill(n_texts);
        }
    }

    /// Makes room for `n` more rows folded: a block's when they go to a spill file.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.rows.reserve_exact(if self.spilling { n.min(BLOCK_ROWS) } else { n });
    }

    /// Rows `start..end` (cut at the table's end), in the order they were folded. Rows in the
    /// snapshot's file are read back and checked; those folded since are borrowed.
    pub fn range(&self, start: usize, end: usize) -> Result<Cow<'_, [IssueRow]>, SnapshotError> {
        self.range_where(start, end, |_| true)
    }

    /// Rows `start..end` as `range` gives them, less the rows of every stored block that holds
    /// no row of a kind `may_keep` accepts: what a scan needs whose filter keeps no row of
    /// another kind. Only blocks with such a row are read back.
    pub fn range_where(
        &self,
        start: usize,
        end: usize,
        may_keep: impl Fn(&IssueKind) -> bool,
    ) -> Result<Cow<'_, [IssueRow]>, SnapshotError> {
        let end = end.min(self.len());
        let start = start.min(end);
        let n_stored = self.n_stored();
        let Some(stored) = self.stored.as_ref().filter(|_| start < n_stored) else {
            return Ok(Cow::Borrowed(&self.rows[start - n_stored..end - n_stored]));
        };
        let mut out: Vec<IssueRow> = Vec::new();
        let mut block = start / BLOCK_ROWS;
        while block * BLOCK_ROWS < end.min(n_stored) {
            let first = block * BLOCK_ROWS;
            if !stored.blocks[block].listing.kinds.iter().any(&may_keep) {
                block += 1;
                continue;
            }
            let mut rows = stored.block(block)?;
            rows.truncate(end - first);
            rows.drain(..start.saturating_sub(first));
            if out.is_empty() {
                out = rows;
            } else {
                out.extend_from_slice(&rows);
            }
            block += 1;
        }
        if end > n_stored {
            out.extend_from_slice(&self.rows[..end - n_stored]);
        }
        Ok(Cow::Owned(out))
    }

    /// Every row in order, `BLOCK_ROWS` at a time.
    pub(crate) fn for_each_block(
        &self,
        mut each: impl FnMut(&[IssueRow]) -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError> {
        for block in 0..self.len().div_ceil(BLOCK_ROWS) {
            each(&self.range(block * BLOCK_ROWS, (block + 1) * BLOCK_ROWS)?)?;
        }
        Ok(())
    }
}
