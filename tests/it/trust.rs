//! Auditor trust end to end: keys, signed checkpoints, inclusion and consistency proofs, and
//! their refusals. The proofs are checked three ways that share no code with caltrail's: an
//! RFC 9162 verifier written here from the RFC's text, `caltrail verify-proof`, and Go's
//! golang.org/x/mod/sumdb/note and sumdb/tlog (tests/go/tlogcheck.go; Debian's golang-go and
//! golang-golang-x-mod-dev, which `.ci/run` installs: under CI a missing Go fails the test).

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::{Sandbox, fixtures, root};

type Hash = [u8; 32];

/// RFC 9162, 2.1.3.2, from the text: verifying an inclusion proof.
fn rfc9162_inclusion(
    leaf_index: u64,
    tree_size: u64,
    entry: &[u8],
    path: &[Hash],
    root: &Hash,
) -> bool {
    let node = |l: &Hash, r: &Hash| -> Hash {
        let mut h = Sha256::new();
        h.update([1u8]);
        h.update(l);
        h.update(r);
        h.finalize().into()
    };
    if leaf_index >= tree_size {
        return false;
    }
    let (mut f_n, mut s_n) = (leaf_index, tree_size - 1);
    let mut r: Hash = {
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(entry);
        h.finalize().into()
    };
    for p in path {
        if s_n == 0 {
            return false;
        }
        if f_n % 2 == 1 || f_n == s_n {
            r = node(p, &r);
            while f_n % 2 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            r = node(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && &r == root
}

fn decode_hash(line: &str) -> Hash {
    STANDARD.decode(line).unwrap().try_into().unwrap()
}

/// A ledger of the estate-audit story with a key and a checkpoint.
struct Signed {
    sandbox: Sandbox,
    key: PathBuf,
    vkey: PathBuf,
    checkpoint: PathBuf,
}

fn signed() -> Signed {
    let sandbox = Sandbox::new();
    sandbox.append_file(&fixtures().join("estate-audit.jsonl")).ok();
    sign(sandbox, "ledger.contoso.com/rds-cals")
}

/// A key of this origin for the sandbox's ledger, and the first checkpoint it signs.
fn sign(sandbox: Sandbox, origin: &str) -> Signed {
    let key = sandbox.dir.path().join("ledger.key");
    let vkey = sandbox.dir.path().join("ledger.vkey");
    let generated =
        sandbox.run(&["key", "generate", "--origin", origin, "--out", key.to_str().unwrap()]).ok();
    std::fs::write(&vkey, &generated.stdout).unwrap();
    let checkpoint = sandbox.dir.path().join("first.checkpoint");
    let signed = sandbox.run(&["checkpoint", "--key", key.to_str().unwrap()]).ok();
    std::fs::write(&checkpoint, &signed.stdout).unwrap();
    Signed { sandbox, key, vkey, checkpoint }
}

impl Signed {
    fn prove(&self, id: &str) -> String {
        self.sandbox.run(&["prove", "--event", id]).ok().stdout
    }

    fn verify_proof(&self, proof: &str) -> (i32, String, String) {
        let file = self.sandbox.dir.path().join("proof");
        std::fs::write(&file, proof).unwrap();
        let run = self.sandbox.run(&[
            "verify-proof",
            "--vkey",
            self.vkey.to_str().unwrap(),
            file.to_str().unwrap(),
        ]);
        (run.code, run.stdout, run.stderr)
    }
}

/// Go's x/mod, or `None` where Go is not installed and `CI` is not set.
fn go(args: &[&Path]) -> Option<(bool, String)> {
    let program = root().join("tests/go/tlogcheck.go");
    let output = Command::new("go")
        .arg("run")
        .arg(&program)
        .args(args)
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOFLAGS", "-mod=mod")
        .output();
    match output {
        Ok(output) => Some((
            output.status.success(),
            String::from_utf8_lossy(if output.status.success() {
                &output.stdout
            } else {
                &output.stderr
            })
            .into_owned(),
        )),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("Go is needed under CI (.ci/run installs golang-go): {e}")
        }
        Err(e) => {
            eprintln!("skipped: no Go here ({e}); .ci/run installs it");
            None
        }
    }
}

#[test]
fn every_event_proves_its_inclusion_three_ways() {
    let signed = signed();
    let log = signed.sandbox.run(&["log", "--format", "csv"]).ok().stdout;
    let column = log.lines().next().unwrap().split(',').position(|c| c == "id").unwrap();
    let ids: Vec<String> =
        log.lines().skip(1).map(|l| l.split(',').nth(column).unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 74);
    let note = std::fs::read_to_string(&signed.checkpoint).unwrap();
    let root_hash = decode_hash(note.lines().nth(2).unwrap());
    for (i, id) in ids.iter().enumerate() {
        let proof = signed.prove(id);
        let lines: Vec<&str> = proof.split("\n\n").next().unwrap().lines().collect();
        let entry = STANDARD.decode(lines[1].strip_prefix("extra ").unwrap()).unwrap();
        assert_eq!(lines[2], format!("index {i}"));
        let path: Vec<Hash> = lines[3..].iter().map(|l| decode_hash(l)).collect();
        assert!(rfc9162_inclusion(i as u64, 74, &entry, &path, &root_hash), "event {id}");
        let (code, stdout, _) = signed.verify_proof(&proof);
        assert_eq!(code, 0);
        assert!(
            stdout.starts_with(&format!(
                "ok: entry {} of 74 in ledger.contoso.com/rds-cals\n{{\"id\":\"{id}\"",
                i + 1
            )),
            "{stdout}"
        );
        if i % 9 == 0 {
            let file = signed.sandbox.dir.path().join(format!("{id}.tlog-proof"));
            std::fs::write(&file, &proof).unwrap();
            if let Some((ok, out)) = go(&[Path::new("inclusion"), &signed.vkey, &file]) {
                assert!(ok, "Go refused the proof of {id}: {out}");
                assert_eq!(out, format!("ok {i} 74\n"));
            }
        }
    }
    if let Some((ok, out)) = go(&[Path::new("checkpoint"), &signed.vkey, &signed.checkpoint]) {
        assert!(ok, "Go refused the checkpoint: {out}");
        assert!(out.starts_with("ok ledger.contoso.com/rds-cals 74 "), "{out}");
    }
}

#[test]
fn a_later_checkpoint_proves_it_extends_the_first() {
    let signed = signed();
    signed.sandbox.append_file(&fixtures().join("late-records.jsonl")).ok();
    let second = signed.sandbox.run(&["checkpoint", "--key", signed.key.to_str().unwrap()]).ok();
    assert!(second.stdout.starts_with("ledger.contoso.com/rds-cals\n79\n"), "{}", second.stdout);
    let proof =
        signed.sandbox.run(&["prove", "--since", signed.checkpoint.to_str().unwrap()]).ok().stdout;
    assert!(proof.starts_with("old 74\n"));
    let file = signed.sandbox.dir.path().join("consistency");
    std::fs::write(&file, &proof).unwrap();
    let verified = signed.sandbox.run(&[
        "verify-proof",
        "--vkey",
        signed.vkey.to_str().unwrap(),
        "--since",
        signed.checkpoint.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert_eq!(
        (verified.code, verified.stdout.as_str()),
        (
            0,
            "ok: 79 entries in ledger.contoso.com/rds-cals, extending the 74 of the old checkpoint\n"
        )
    );
    if let Some((ok, out)) =
        go(&[Path::new("consistency"), &signed.vkey, &signed.checkpoint, &file])
    {
        assert!(ok, "Go refused the consistency proof: {out}");
        assert_eq!(out, "ok 74 79\n");
    }
    let kept = signed.sandbox.run(&[
        "verify",
        "--checkpoint",
        signed.checkpoint.to_str().unwrap(),
        "--vkey",
        signed.vkey.to_str().unwrap(),
    ]);
    assert_eq!(
        (kept.code, kept.stdout.as_str()),
        (0, "ok: the ledger holds the checkpoint's tree of 74 entries (79 now)\n")
    );
}

#[test]
fn altered_proofs_and_foreign_keys_are_refused() {
    let signed = signed();
    let proof = signed.prove("ea-010");
    let refused = |altered: String, why: &str| {
        let (code, stdout, stderr) = signed.verify_proof(&altered);
        assert_eq!((code, stdout.as_str()), (1, ""), "{altered}");
        assert!(stderr.contains(why), "{stderr} should say {why}");
    };
    refused(
        proof.replace("index 9\n", "index 10\n"),
        "the proof is for index 10, but the entry is entry 10 (index 9)",
    );
    let lines: Vec<&str> = proof.lines().collect();
    let one_less: String = proof.replacen(&format!("{}\n", lines[3]), "", 1);
    refused(one_less, "shorter than the tree requires");
    let one_more = proof.replacen("\n\n", &format!("\n{}\n\n", lines[3]), 1);
    refused(one_more, "longer than the tree allows");
    let changed_root = {
        let root_line = proof.split("\n\n").nth(1).unwrap().lines().nth(2).unwrap().to_owned();
        proof.replace(&root_line, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    };
    refused(changed_root, "does not verify");
    // Another entry's bytes under this index: the leaf is hashed from the bytes, so it fails.
    let other = signed.prove("ea-011");
    let other_extra = other.lines().nth(1).unwrap();
    refused(
        proof.replace(lines[1], other_extra),
        "the proof is for index 9, but the entry is entry 11",
    );

    let foreign = signed.sandbox.dir.path().join("foreign.key");
    let foreign_vkey = signed
        .sandbox
        .run(&[
            "key",
            "generate",
            "--origin",
            "ledger.contoso.com/rds-cals",
            "--out",
            foreign.to_str().unwrap(),
        ])
        .ok()
        .stdout;
    let file = signed.sandbox.dir.path().join("proof");
    std::fs::write(&file, &proof).unwrap();
    let run = signed.sandbox.run(&[
        "verify-proof",
        "--vkey",
        foreign_vkey.trim(),
        file.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("no signature by the key ledger.contoso.com/rds-cals+"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_rewritten_ledger_is_refused_and_a_fork_is_not_signed() {
    let signed = signed();
    // The same story with one quantity changed: a rewritten history of the same size.
    let story = std::fs::read_to_string(fixtures().join("estate-audit.jsonl")).unwrap();
    let rewritten = Sandbox::new();
    let file = rewritten.dir.path().join("rewritten.jsonl");
    let first_quantity = story.find("\"quantity\":").unwrap();
    let mut altered = story.clone();
    altered.insert(first_quantity + "\"quantity\":".len(), '1');
    std::fs::write(&file, altered).unwrap();
    rewritten.append_file(&file).ok();
    let run = rewritten.run(&[
        "verify",
        "--checkpoint",
        signed.checkpoint.to_str().unwrap(),
        "--vkey",
        signed.vkey.to_str().unwrap(),
    ]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (
            1,
            "failed: the ledger's first 74 entries do not hash to the checkpoint's root: the history was rewritten since it was signed\n"
        )
    );
    // The key's state remembers the first checkpoint: the rewritten ledger is a fork.
    let run = rewritten.run(&["checkpoint", "--key", signed.key.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("signed a checkpoint of 74 entries that this ledger does not extend"),
        "{}",
        run.stderr
    );
}

/// The stored tiles are kept up by append and checked against the entries by `verify --deep`.
#[test]
fn a_tile_changed_by_hand_is_found_by_verify_deep() {
    let sandbox = Sandbox::new();
    let history = sandbox.run(&["generate", "--events", "700"]).ok().stdout;
    // Three appends, whose tiles start and end inside batches: each batch hashes the tiles it
    // completes from its own entries and the ones before it in the first tile.
    let lines: Vec<&str> = history.lines().collect();
    for (i, part) in [&lines[..100], &lines[100..400], &lines[400..]].iter().enumerate() {
        let file = sandbox.dir.path().join(format!("part{i}.jsonl"));
        std::fs::write(&file, part.join("\n")).unwrap();
        sandbox.append_file(&file).ok();
    }
    let conn = rusqlite::Connection::open(sandbox.db()).unwrap();
    let n: i64 = conn.query_row("SELECT count(*) FROM entries", [], |r| r.get(0)).unwrap();
    let tiles: i64 = conn.query_row("SELECT count(*) FROM tree_tiles", [], |r| r.get(0)).unwrap();
    assert_eq!(tiles, n / 256);
    assert_eq!(sandbox.run(&["verify", "--deep"]).code, 0);
    // A ledger without its tiles (as written before the tree) gets them all at its next
    // append: those before the batch from the table, the batch's own from its entries.
    conn.execute_batch("DROP TABLE tree_tiles").unwrap();
    let one = sandbox.dir.path().join("one.jsonl");
    std::fs::write(
        &one,
        r#"{"id":"tile-test-1","type":"agreement.purchased","at":"2026-01-01T00:00:00Z","data":{"agreement":"EA-TILES","program":"enterprise_agreement","product_version":"2022","cal_type":"per_user","quantity":10,"anniversary":"01-01"}}"#,
    )
    .unwrap();
    sandbox.append_file(&one).ok();
    let tiles: i64 = conn.query_row("SELECT count(*) FROM tree_tiles", [], |r| r.get(0)).unwrap();
    assert_eq!(tiles, (n + 1) / 256);
    assert_eq!(sandbox.run(&["verify", "--deep"]).code, 0);
    conn.execute("UPDATE tree_tiles SET hash = zeroblob(32) WHERE tile = 1", []).unwrap();
    let run = sandbox.run(&["verify", "--deep"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (
            1,
            "tree tile 1 (entries 257 to 512): its hash differs from its entries'\nfailed: 1 stored tree tiles differ from the entries; the chain is whole\n"
        )
    );
}

/// Tiles recomputed from the entries are hashed sixteen to a chunk on the workers: across a
/// chunk's edge they agree with those append kept up, and a changed one is named exactly.
#[test]
fn tiles_recomputed_on_the_workers_agree_across_chunks() {
    let sandbox = Sandbox::new();
    let history = sandbox.run(&["generate", "--events", "5000"]).ok().stdout;
    let file = sandbox.dir.path().join("estate.jsonl");
    std::fs::write(&file, history).unwrap();
    sandbox.append_file(&file).ok();
    let conn = rusqlite::Connection::open(sandbox.db()).unwrap();
    let tiles: i64 = conn.query_row("SELECT count(*) FROM tree_tiles", [], |r| r.get(0)).unwrap();
    assert!(tiles > 16, "{tiles} tiles: more than one chunk");
    assert_eq!(sandbox.run(&["verify", "--deep"]).code, 0);
    conn.execute("UPDATE tree_tiles SET hash = zeroblob(32) WHERE tile = 16", []).unwrap();
    let run = sandbox.run(&["verify", "--deep"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (
            1,
            "tree tile 16 (entries 4097 to 4352): its hash differs from its entries'\nfailed: 1 stored tree tiles differ from the entries; the chain is whole\n"
        )
    );
}

#[test]
fn a_key_file_is_private_and_never_overwritten() {
    let signed = signed();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&signed.key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let before = std::fs::read_to_string(&signed.key).unwrap();
    assert!(before.starts_with("PRIVATE+KEY+ledger.contoso.com/rds-cals+"));
    let run = signed.sandbox.run(&[
        "key",
        "generate",
        "--origin",
        "x.example/log",
        "--out",
        signed.key.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2);
    assert_eq!(std::fs::read_to_string(&signed.key).unwrap(), before);
    let run = signed.sandbox.run(&[
        "key",
        "generate",
        "--origin",
        "has space",
        "--out",
        "/tmp/never-written.key",
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("names hold no space"), "{}", run.stderr);
}

/// An auditor as witness: cosigns the first checkpoint (trust on first use), refuses a later
/// one without its consistency proof and a rollback, cosigns it with the proof; the log
/// attaches the cosignature after checking it. The state is keyed by the configured log key.
#[test]
fn a_witness_cosigns_only_what_extends_what_it_cosigned() {
    let signed = signed();
    let dir = signed.sandbox.dir.path();
    let witness_key = dir.join("witness.key");
    let witness_vkey = signed
        .sandbox
        .run(&[
            "key",
            "generate",
            "--cosigner",
            "--origin",
            "auditor.example/witness",
            "--out",
            witness_key.to_str().unwrap(),
        ])
        .ok()
        .stdout;
    let state = dir.join("witness-state");
    let cosign = |checkpoint: &Path, proof: Option<&Path>| {
        let mut args = vec![
            "cosign",
            "--key",
            witness_key.to_str().unwrap(),
            "--log-vkey",
            signed.vkey.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
            checkpoint.to_str().unwrap(),
        ];
        if let Some(proof) = proof {
            args.extend(["--proof", proof.to_str().unwrap()]);
        }
        signed.sandbox.run(&args)
    };
    let first = cosign(&signed.checkpoint, None).ok();
    assert!(first.stdout.starts_with("\u{2014} auditor.example/witness "), "{}", first.stdout);
    let line = dir.join("first.cosignature");
    std::fs::write(&line, &first.stdout).unwrap();
    let attached = signed
        .sandbox
        .run(&[
            "checkpoint",
            "--add-cosignature",
            line.to_str().unwrap(),
            "--witness-vkey",
            witness_vkey.trim(),
        ])
        .ok();
    assert!(attached.stdout.ends_with(&first.stdout));
    // The cosigned checkpoint still opens in Go (which ignores the unknown witness line).
    let cosigned = dir.join("cosigned.checkpoint");
    std::fs::write(&cosigned, &attached.stdout).unwrap();
    if let Some((ok, out)) = go(&[Path::new("checkpoint"), &signed.vkey, &cosigned]) {
        assert!(ok, "Go refused the cosigned checkpoint: {out}");
    }
    // A cosignature by another witness key is refused.
    let other_key = dir.join("other.key");
    let other_vkey = signed
        .sandbox
        .run(&[
            "key",
            "generate",
            "--cosigner",
            "--origin",
            "auditor.example/witness",
            "--out",
            other_key.to_str().unwrap(),
        ])
        .ok()
        .stdout;
    let run = signed.sandbox.run(&[
        "checkpoint",
        "--add-cosignature",
        line.to_str().unwrap(),
        "--witness-vkey",
        other_vkey.trim(),
    ]);
    assert_eq!(run.code, 2);

    signed.sandbox.append_file(&fixtures().join("late-records.jsonl")).ok();
    let second = dir.join("second.checkpoint");
    let note =
        signed.sandbox.run(&["checkpoint", "--key", signed.key.to_str().unwrap()]).ok().stdout;
    std::fs::write(&second, note).unwrap();
    let run = cosign(&second, None);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("give --proof, a consistency proof from the 74 entries last cosigned"),
        "{}",
        run.stderr
    );
    let proof = dir.join("consistency");
    let body = signed
        .sandbox
        .run(&[
            "prove",
            "--since",
            signed.checkpoint.to_str().unwrap(),
            "--checkpoint",
            second.to_str().unwrap(),
        ])
        .ok()
        .stdout;
    std::fs::write(&proof, body).unwrap();
    cosign(&second, Some(&proof)).ok();
    let run = cosign(&signed.checkpoint, None);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("refused: a rollback from 79 entries to 74"), "{}", run.stderr);
    let names: Vec<String> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 1);
    assert!(names[0].starts_with("ledger.contoso.com_rds-cals+"), "{names:?}");
}

/// A ledger written before the tree (fixtures/format-1/estate-b40947c.db, 91 entries) gets its tables
/// on first use without any entry changing (the head kept for it still verifies), and its
/// proofs verify.
#[test]
fn a_ledger_written_before_the_tree_gets_it_on_first_use() {
    let old = Sandbox::new();
    std::fs::copy(root().join("fixtures/format-1/estate-b40947c.db"), old.db()).unwrap();
    let head =
        std::fs::read_to_string(root().join("fixtures/format-1/estate-b40947c.head")).unwrap();
    let key = old.dir.path().join("old.key");
    let vkey = old.dir.path().join("old.vkey");
    let made = old
        .run(&["key", "generate", "--origin", "ledger.example/old", "--out", key.to_str().unwrap()])
        .ok();
    std::fs::write(&vkey, made.stdout).unwrap();
    let checkpoint = old.run(&["checkpoint", "--key", key.to_str().unwrap()]).ok().stdout;
    assert!(checkpoint.starts_with("ledger.example/old\n91\n"), "{checkpoint}");
    assert_eq!(
        old.run(&["verify", "--head", head.trim()]).ok().stdout,
        format!("ok: 91 events, head {}\n", head.trim())
    );
    let log = old.run(&["log", "--format", "csv"]).ok().stdout;
    let column = log.lines().next().unwrap().split(',').position(|c| c == "id").unwrap();
    let last_id = log.lines().last().unwrap().split(',').nth(column).unwrap().to_owned();
    let proof = old.run(&["prove", "--event", &last_id]).ok().stdout;
    let file = old.dir.path().join("proof");
    std::fs::write(&file, proof).unwrap();
    let verified =
        old.run(&["verify-proof", "--vkey", vkey.to_str().unwrap(), file.to_str().unwrap()]).ok();
    assert!(
        verified.stdout.starts_with("ok: entry 91 of 91 in ledger.example/old\n"),
        "{}",
        verified.stdout
    );
}

/// Over 65,536 entries the tree keeps a second level of tiles (a hash of each 256 tiles), so
/// that a proof reads a few hundred hashes: its proofs are those the tiles alone give, other
/// people's verifiers accept them, and `verify --deep` checks that level too.
#[test]
fn the_upper_level_of_tiles_serves_proofs_and_is_checked() {
    let sandbox = Sandbox::new();
    let history = sandbox.run(&["generate", "--events", "70000"]).ok().stdout;
    let file = sandbox.dir.path().join("estate.jsonl");
    std::fs::write(&file, history).unwrap();
    sandbox.append_file(&file).ok();
    let conn = rusqlite::Connection::open(sandbox.db()).unwrap();
    let count = |table: &str| -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()
    };
    let n = count("entries");
    assert_eq!((count("tree_tiles"), count("tree_tiles_1")), (n / 256, 1));
    drop(conn);
    let Signed { sandbox, vkey, .. } = sign(sandbox, "bench.example/ledger");
    let conn = rusqlite::Connection::open(sandbox.db()).unwrap();
    let log = sandbox.run(&["log", "--format", "csv"]).ok().stdout;
    let column = log.lines().next().unwrap().split(',').position(|c| c == "id").unwrap();
    let id_of =
        |seq: usize| log.lines().nth(seq).unwrap().split(',').nth(column).unwrap().to_owned();
    let mut proofs = Vec::new();
    for seq in [1, 40_000, 65_536, 65_537, n as usize] {
        let proof = sandbox.run(&["prove", "--event", &id_of(seq)]).ok().stdout;
        let path = sandbox.dir.path().join(format!("{seq}.tlog-proof"));
        std::fs::write(&path, &proof).unwrap();
        let checked = sandbox.run(&[
            "verify-proof",
            "--vkey",
            vkey.to_str().unwrap(),
            path.to_str().unwrap(),
        ]);
        assert_eq!(checked.code, 0, "{}", checked.stderr);
        if let Some((ok, out)) = go(&[Path::new("inclusion"), &vkey, &path]) {
            assert!(ok, "Go refused the proof of entry {seq}: {out}");
            assert_eq!(out, format!("ok {} {n}\n", seq - 1));
        }
        proofs.push(proof);
    }
    assert_eq!(sandbox.run(&["verify", "--deep"]).code, 0);
    // A changed upper hash is named with the entries under it.
    conn.execute("UPDATE tree_tiles_1 SET hash = zeroblob(32) WHERE tile = 0", []).unwrap();
    let run = sandbox.run(&["verify", "--deep"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (
            1,
            "upper tree tile 0 (entries 1 to 65536): its hash differs from its entries'\nfailed: 1 stored tree tiles differ from the entries; the chain is whole\n"
        )
    );
    // Without the upper level (a ledger written before it), the same proofs.
    conn.execute_batch("DROP TABLE tree_tiles_1").unwrap();
    for (seq, proof) in [1, 40_000, 65_536, 65_537, n as usize].iter().zip(&proofs) {
        assert_eq!(&sandbox.run(&["prove", "--event", &id_of(*seq)]).ok().stdout, proof);
    }
}
