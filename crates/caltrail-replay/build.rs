//! Hashes the projection code (this crate's sources and data, and the event types it folds)
//! into `PROJECTION_CODE`: a snapshot of the state written by other code is not read.

use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dirs =
        [manifest.join("src"), manifest.join("data"), manifest.join("../caltrail-events/src")];
    let mut paths = Vec::new();
    for dir in &dirs {
        println!("cargo:rerun-if-changed={}", dir.display());
        files(dir, &mut paths);
    }
    paths.sort();
    // Two SipHash digests with different prefixes: an identifier of the code, not a defence.
    let mut halves = [DefaultHasher::new(), DefaultHasher::new()];
    halves[1].write(b"caltrail projection code, second half");
    for path in &paths {
        let relative = path.strip_prefix(&manifest).unwrap_or(path);
        let bytes = std::fs::read(path).expect("a source file reads");
        for half in &mut halves {
            half.write(relative.to_string_lossy().as_bytes());
            half.write_u64(bytes.len() as u64);
            half.write(&bytes);
        }
    }
    let mut code = Vec::new();
    for half in &halves {
        code.extend_from_slice(&half.finish().to_le_bytes());
    }
    let text =
        format!("[{}]", code.iter().map(|b| format!("{b:#04x}")).collect::<Vec<_>>().join(", "));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    std::fs::write(out.join("projection_code.rs"), text).expect("OUT_DIR is writable");
}
