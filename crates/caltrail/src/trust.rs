//! Auditor trust: signing keys, signed checkpoints of the ledger's Merkle tree, offline proofs
//! (C2SP tlog-checkpoint and tlog-proof, the tlog-witness consistency body) and their
//! verification without the ledger. The formats are in `caltrail-tlog`; this file reads and
//! writes files and prints.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use caltrail_store::{Ledger, StoredTree};
use caltrail_tlog::merkle::{self, Hash};
use caltrail_tlog::note::{self, SignedNote};
use caltrail_tlog::{Checkpoint, ConsistencyBundle, InclusionBundle, SigningKey, VerifierKey};

use crate::Outcome;

/// Signing keys for checkpoints.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  caltrail key generate --origin ledger.contoso.com/rds-cals --out ledger.key > ledger.vkey\n  caltrail key generate --origin auditor.fabrikam.com --cosigner --out witness.key > witness.vkey"
)]
pub(crate) struct KeyArgs {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeyCommand {
    /// Write a new Ed25519 private key in Go's note format (file mode 0600) and print its
    /// verifier key, the line an auditor keeps.
    #[command(
        after_help = "Examples:\n  caltrail key generate --origin ledger.contoso.com/rds-cals --out ledger.key > ledger.vkey\n  caltrail key generate --origin auditor.fabrikam.com --cosigner --out witness.key > witness.vkey"
    )]
    Generate {
        /// The log's name: the origin line of its checkpoints (no space or '+').
        #[arg(long)]
        origin: String,
        /// Where to write the private key; an existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// A witness's key, which cosigns checkpoints (c2sp.org/tlog-cosignature) instead of
        /// signing them: --origin is then the witness's name.
        #[arg(long)]
        cosigner: bool,
    },
}

pub(crate) fn key(args: &KeyArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let KeyCommand::Generate { origin, out: path, cosigner } = &args.command;
    let kind = if *cosigner { note::COSIGNATURE } else { note::ED25519 };
    let key =
        SigningKey::generate_kind(origin, kind).map_err(|e| anyhow::anyhow!("--origin: {e}"))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| {
        format!("cannot create {} (an existing key is never overwritten)", path.display())
    })?;
    writeln!(file, "{}", key.to_text())?;
    file.sync_all()?;
    writeln!(out, "{}", key.verifier().to_text())?;
    Ok(Outcome::Clean)
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn read_key(path: &Path) -> anyhow::Result<SigningKey> {
    SigningKey::parse(&read_text(path)?).with_context(|| path.display().to_string())
}

fn read_vkey(text_or_path: &str) -> anyhow::Result<VerifierKey> {
    let text = if Path::new(text_or_path).is_file() {
        read_text(Path::new(text_or_path))?
    } else {
        text_or_path.to_owned()
    };
    VerifierKey::parse(text.trim()).map_err(|e| anyhow::anyhow!("--vkey: {e}"))
}

/// Replaces `path` with `text` whole: written to a file beside it, synced, then renamed over
/// it, so that a crash leaves the old state or the new, never half of one.
fn write_replacing(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    let temporary = PathBuf::from(name);
    let mut file = std::fs::File::create(&temporary)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The state beside a key: the last checkpoint it signed, so that it never signs a tree that
/// does not extend it, whatever ledger it is shown (a restored old one included).
fn state_path(key: &Path) -> PathBuf {
    let mut name = key.as_os_str().to_owned();
    name.push(".state");
    PathBuf::from(name)
}

/// Sign the ledger's Merkle tree as a checkpoint, keep it in the ledger and print it.
///
/// Refuses a tree that does not extend the last checkpoint the key signed (kept in
/// KEYFILE.state beside the key). More than one --key signs with each, for key rotation.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  caltrail checkpoint --key ledger.key > 2026-true-up.checkpoint\n  caltrail checkpoint --key old.key --key new.key"
)]
pub(crate) struct CheckpointArgs {
    /// A private key from `caltrail key generate` (repeat to sign with several).
    #[arg(long = "key", value_name = "FILE", required_unless_present = "add_cosignature")]
    keys: Vec<PathBuf>,
    /// A witness's cosignature line (from `caltrail cosign`) to attach to the latest checkpoint
    /// kept in the ledger, once checked against --witness-vkey.
    #[arg(long, value_name = "FILE", conflicts_with = "keys", requires = "witness_vkey")]
    add_cosignature: Option<PathBuf>,
    /// The witness's verifier key, or a file holding it.
    #[arg(long, value_name = "VKEY")]
    witness_vkey: Option<String>,
}

pub(crate) fn checkpoint(
    db: &Path,
    args: &CheckpointArgs,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    if let (Some(file), Some(vkey)) = (&args.add_cosignature, &args.witness_vkey) {
        return add_cosignature(db, file, vkey, out);
    }
    let keys: Vec<SigningKey> =
        args.keys.iter().map(|p| read_key(p)).collect::<anyhow::Result<_>>()?;
    let origin = keys[0].name().to_owned();
    if let Some(other) = keys.iter().find(|k| k.name() != origin) {
        bail!(
            "every --key must have the same name, the checkpoint's origin: {origin} and {}",
            other.name()
        );
    }
    let mut ledger = crate::report::open_with_events(db)?;
    ledger.build_tree()?;
    let size = ledger.head()?.n_events;
    let mut tree = ledger.tree()?;
    let root = merkle::root(&mut tree, size)?;
    for path in &args.keys {
        let state = state_path(path);
        if !state.exists() {
            continue;
        }
        let last = Checkpoint::parse_text(&read_text(&state)?)
            .with_context(|| format!("{}: the key's state is damaged", state.display()))?;
        let extends = last.size <= size && merkle::root(&mut tree, last.size)? == last.root;
        if !extends {
            bail!(
                "{} signed a checkpoint of {} entries that this ledger does not extend (its tree differs, or it is shorter): refusing to sign a fork",
                path.display(),
                last.size
            );
        }
    }
    drop(tree);
    let text = Checkpoint { origin, size, root }.to_text();
    let note = SignedNote::sign(&text, &keys.iter().collect::<Vec<_>>());
    ledger.store_checkpoint(size, &note)?;
    for path in &args.keys {
        write_replacing(&state_path(path), &text)?;
    }
    write!(out, "{note}")?;
    Ok(Outcome::Clean)
}

/// The checkpoint to prove against: a file, or the latest kept in the ledger; checked to be
/// this ledger's tree (`tree`, the ledger's).
fn checkpoint_of(
    ledger: &Ledger,
    tree: &mut StoredTree<'_>,
    file: Option<&Path>,
) -> anyhow::Result<(String, Checkpoint)> {
    let note = match file {
        Some(path) => read_text(path)?,
        None => ledger
            .latest_checkpoint()?
            .context("the ledger holds no checkpoint: run caltrail checkpoint --key FILE first")?,
    };
    let parsed = SignedNote::parse(&note).context("the checkpoint")?;
    let checkpoint = Checkpoint::from_note(&parsed).context("the checkpoint")?;
    let n = ledger.head()?.n_events;
    if checkpoint.size > n {
        bail!("the checkpoint is of {} entries; the ledger holds {n}", checkpoint.size);
    }
    if merkle::root(tree, checkpoint.size)? != checkpoint.root {
        bail!(
            "the ledger's tree at {} entries is not the checkpoint's: it is not this ledger, or it was rewritten",
            checkpoint.size
        );
    }
    Ok((note, checkpoint))
}

/// Print an offline proof: that an event is in the ledger, or that the ledger extends an
/// older checkpoint.
///
/// `--event ID` prints a c2sp.org/tlog-proof@v1 bundle (the entry's bytes as `extra`, its
/// index, the inclusion proof, then the checkpoint). `--since OLD` prints a consistency proof
/// as a tlog-witness add-checkpoint body. Without --checkpoint, the latest one kept in the
/// ledger is used.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  caltrail prove --event mus-010 > mus-010.tlog-proof\n  caltrail prove --since 2025-true-up.checkpoint > 2026.consistency"
)]
pub(crate) struct ProveArgs {
    /// The id of the event to prove.
    #[arg(long, conflicts_with = "since", required_unless_present = "since")]
    event: Option<String>,
    /// An older checkpoint of this ledger to prove consistency from.
    #[arg(long, value_name = "FILE")]
    since: Option<PathBuf>,
    /// The checkpoint to prove against (default: the latest kept in the ledger).
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
}

pub(crate) fn prove(db: &Path, args: &ProveArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let ledger = crate::report::open_with_events(db)?;
    let mut tree = ledger.tree()?;
    let (note, checkpoint) = checkpoint_of(&ledger, &mut tree, args.checkpoint.as_deref())?;
    if let Some(id) = &args.event {
        let seq = ledger.seq_of(id)?.with_context(|| format!("no event {id:?} in the ledger"))?;
        if seq > checkpoint.size {
            bail!(
                "event {id} is entry {seq}, after the checkpoint's {} entries: sign a newer checkpoint",
                checkpoint.size
            );
        }
        let index = seq - 1;
        let bundle = InclusionBundle {
            extra: ledger.entry_bytes(seq)?,
            index,
            proof: merkle::inclusion_proof(&mut tree, index, checkpoint.size)?,
            checkpoint: note,
        };
        write!(out, "{}", bundle.to_text())?;
    } else if let Some(path) = &args.since {
        let old_note =
            SignedNote::parse(&read_text(path)?).with_context(|| path.display().to_string())?;
        let old = Checkpoint::from_note(&old_note).with_context(|| path.display().to_string())?;
        if old.origin != checkpoint.origin {
            bail!(
                "{}: the old checkpoint's origin {} is not this one's, {}",
                path.display(),
                old.origin,
                checkpoint.origin
            );
        }
        if old.size > checkpoint.size || merkle::root(&mut tree, old.size)? != old.root {
            bail!(
                "{}: this ledger does not extend that checkpoint: its tree at {} entries differs",
                path.display(),
                old.size
            );
        }
        let bundle = ConsistencyBundle {
            old: old.size,
            proof: merkle::consistency_proof(&mut tree, old.size, checkpoint.size)?,
            checkpoint: note,
        };
        write!(out, "{}", bundle.to_text())?;
    }
    Ok(Outcome::Clean)
}

/// Check a proof from `caltrail prove` without any ledger: exit 0 and print the event (or the
/// checkpoint's size), or exit 1 and say why.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  caltrail verify-proof --vkey ledger.vkey mus-010.tlog-proof\n  caltrail verify-proof --vkey ledger.vkey --since 2025-true-up.checkpoint 2026.consistency"
)]
pub(crate) struct VerifyProofArgs {
    /// The log's verifier key (name+id+key), or a file holding it.
    #[arg(long, value_name = "VKEY")]
    vkey: String,
    /// The older checkpoint, for a consistency proof.
    #[arg(long, value_name = "FILE")]
    since: Option<PathBuf>,
    /// The proof file.
    file: PathBuf,
}

/// A checkpoint note whose signature by `vkey` verifies, read: the signature first, then the
/// root it vouches for.
fn verified_checkpoint(note: &str, vkey: &VerifierKey, what: &str) -> Result<Checkpoint, String> {
    let parsed = SignedNote::parse(note).map_err(|e| format!("{what}: {e}"))?;
    parsed.verify(vkey).map_err(|e| format!("{what}: {e}"))?;
    let checkpoint = Checkpoint::from_note(&parsed).map_err(|e| format!("{what}: {e}"))?;
    if checkpoint.origin != vkey.name {
        return Err(format!(
            "{what}: its origin {} is not the key's name {}",
            checkpoint.origin, vkey.name
        ));
    }
    Ok(checkpoint)
}

pub(crate) fn verify_proof(args: &VerifyProofArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let vkey = read_vkey(&args.vkey)?;
    let text = read_text(&args.file)?;
    let result = match &args.since {
        None => check_inclusion(&text, &vkey),
        Some(old) => check_consistency(&read_text(old)?, &text, &vkey),
    };
    match result {
        Ok(message) => {
            writeln!(out, "{message}")?;
            Ok(Outcome::Clean)
        }
        Err(why) => {
            eprintln!("caltrail: {}: proof refused: {why}", args.file.display());
            Ok(Outcome::Found)
        }
    }
}

fn check_inclusion(text: &str, vkey: &VerifierKey) -> Result<String, String> {
    let bundle = InclusionBundle::parse(text).map_err(|e| e.to_string())?;
    let checkpoint = verified_checkpoint(&bundle.checkpoint, vkey, "the checkpoint")?;
    let bytes = bundle.extra.as_ref().ok_or("the proof carries no entry bytes (its extra line)")?;
    let entry = caltrail_events::Entry::decode(bytes)
        .map_err(|e| format!("the entry bytes are not an entry: {e}"))?;
    if entry.seq != bundle.index + 1 {
        return Err(format!(
            "the proof is for index {}, but the entry is entry {} (index {})",
            bundle.index,
            entry.seq,
            entry.seq - 1
        ));
    }
    // The leaf hash is computed here from the entry, never taken from the proof.
    let leaf: Hash = merkle::leaf_hash(bytes);
    merkle::verify_inclusion(
        &leaf,
        bundle.index,
        checkpoint.size,
        &bundle.proof,
        &checkpoint.root,
    )?;
    Ok(format!(
        "ok: entry {} of {} in {}\n{}",
        entry.seq,
        checkpoint.size,
        checkpoint.origin,
        entry.event.to_value().to_json()
    ))
}

fn check_consistency(old_note: &str, text: &str, vkey: &VerifierKey) -> Result<String, String> {
    let old = verified_checkpoint(old_note, vkey, "the old checkpoint")?;
    let bundle = ConsistencyBundle::parse(text).map_err(|e| e.to_string())?;
    let new = verified_checkpoint(&bundle.checkpoint, vkey, "the new checkpoint")?;
    if bundle.old != old.size {
        return Err(format!(
            "the proof is from {} entries, the old checkpoint is of {}",
            bundle.old, old.size
        ));
    }
    merkle::verify_consistency(old.size, new.size, &old.root, &new.root, &bundle.proof)?;
    Ok(format!(
        "ok: {} entries in {}, extending the {} of the old checkpoint",
        new.size, new.origin, old.size
    ))
}

/// `verify --checkpoint FILE --vkey VKEY`: the ledger holds that tree at that size, recomputed
/// from its entries.
pub(crate) fn verify_checkpoint(
    ledger: &Ledger,
    file: &Path,
    vkey: &str,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let vkey = read_vkey(vkey)?;
    let checkpoint =
        match verified_checkpoint(&read_text(file)?, &vkey, &file.display().to_string()) {
            Ok(checkpoint) => checkpoint,
            Err(why) => {
                writeln!(out, "failed: {why}")?;
                return Ok(Outcome::Found);
            }
        };
    let n = ledger.head()?.n_events;
    if checkpoint.size > n {
        writeln!(
            out,
            "failed: the checkpoint is of {} entries, the ledger holds {n}: entries were removed",
            checkpoint.size
        )?;
        return Ok(Outcome::Found);
    }
    let root = merkle::root(&mut ledger.recomputed_tree(checkpoint.size)?, checkpoint.size)?;
    if root != checkpoint.root {
        writeln!(
            out,
            "failed: the ledger's first {} entries do not hash to the checkpoint's root: the history was rewritten since it was signed",
            checkpoint.size
        )?;
        return Ok(Outcome::Found);
    }
    writeln!(
        out,
        "ok: the ledger holds the checkpoint's tree of {} entries ({} now)",
        checkpoint.size, n
    )?;
    Ok(Outcome::Clean)
}

fn add_cosignature(
    db: &Path,
    file: &Path,
    vkey: &str,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let witness = read_vkey(vkey)?;
    let mut ledger = Ledger::open_existing(db)?;
    let note = ledger
        .latest_checkpoint()?
        .context("the ledger holds no checkpoint: run caltrail checkpoint --key FILE first")?;
    let line = read_text(file)?;
    let line = line.trim_end_matches('\n');
    let with = format!("{note}{line}\n");
    let parsed = SignedNote::parse(&with).with_context(|| file.display().to_string())?;
    parsed.verify_cosignature(&witness).with_context(|| {
        format!("{}: not a cosignature of the latest checkpoint", file.display())
    })?;
    let size = Checkpoint::from_note(&parsed)?.size;
    ledger.store_checkpoint(size, &with)?;
    write!(out, "{with}")?;
    Ok(Outcome::Clean)
}

/// Act as a witness (c2sp.org/tlog-cosignature): cosign a log's checkpoint if its signature
/// verifies and it is consistent with the last checkpoint cosigned for that log.
///
/// The witness's state (DIR) keeps, per configured log origin and key, the last checkpoint
/// it cosigned: a smaller tree is a rollback and refused, a larger one needs --proof (a
/// consistency proof from `caltrail prove --since`). Prints the cosignature line.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  caltrail cosign --key witness.key --log-vkey ledger.vkey --state witness-state 2026.checkpoint --proof 2026.consistency > 2026.cosignature\n  caltrail cosign --key witness.key --log-vkey ledger.vkey --state witness-state 2025.checkpoint"
)]
pub(crate) struct CosignArgs {
    /// The witness's key (`caltrail key generate --cosigner`).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The log's verifier key, or a file holding it: the log this witness follows.
    #[arg(long, value_name = "VKEY")]
    log_vkey: String,
    /// The witness's state folder.
    #[arg(long, value_name = "DIR")]
    state: PathBuf,
    /// The checkpoint to cosign.
    checkpoint: PathBuf,
    /// A consistency proof from the last checkpoint cosigned to this one.
    #[arg(long, value_name = "FILE")]
    proof: Option<PathBuf>,
}

pub(crate) fn cosign(args: &CosignArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let witness = read_key(&args.key)?;
    if witness.kind() != note::COSIGNATURE {
        bail!(
            "{}: not a witness's key (make one with caltrail key generate --cosigner)",
            args.key.display()
        );
    }
    let log = read_vkey(&args.log_vkey)?;
    let text = read_text(&args.checkpoint)?;
    let checkpoint = verified_checkpoint(&text, &log, &args.checkpoint.display().to_string())
        .map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&args.state)
        .with_context(|| format!("cannot create {}", args.state.display()))?;
    // Keyed by the configured origin and key, never by what the checkpoint claims.
    let state = args.state.join(state_name(&log));
    if state.exists() {
        let last = Checkpoint::parse_text(&read_text(&state)?)
            .with_context(|| format!("{}: the witness state is damaged", state.display()))?;
        if checkpoint.size < last.size {
            bail!("refused: a rollback from {} entries to {}", last.size, checkpoint.size);
        }
        if checkpoint.size == last.size && checkpoint.root != last.root {
            bail!(
                "refused: a different tree of {} entries than the one cosigned: a fork",
                last.size
            );
        }
        if checkpoint.size > last.size {
            let path = args.proof.as_ref().with_context(|| {
                format!(
                    "refused: give --proof, a consistency proof from the {} entries last cosigned",
                    last.size
                )
            })?;
            let bundle = ConsistencyBundle::parse(&read_text(path)?)
                .with_context(|| path.display().to_string())?;
            if bundle.old != last.size {
                bail!(
                    "refused: the proof is from {} entries, the last cosigned is of {}",
                    bundle.old,
                    last.size
                );
            }
            merkle::verify_consistency(
                last.size,
                checkpoint.size,
                &last.root,
                &checkpoint.root,
                &bundle.proof,
            )
            .map_err(|why| anyhow::anyhow!("refused: {why}"))?;
        }
    }
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // The note text read back: checkpoints are parsed strictly (no extension line, canonical
    // numbers and base64), so it is the text the log signed, byte for byte.
    let text = checkpoint.to_text();
    let line = witness.cosign_line(&text, timestamp);
    write_replacing(&state, &text)?;
    write!(out, "{line}")?;
    Ok(Outcome::Clean)
}

/// The state file of a followed log: its name and key id, with what a file name cannot
/// hold spelled out.
fn state_name(log: &VerifierKey) -> String {
    let name: String = log
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') { c } else { '_' })
        .collect();
    format!("{name}+{:08x}.checkpoint", log.id)
}
