//! End-to-end tests of the `caltrail` binary: one test binary, one module per feature, each test
//! in a fresh temporary folder. Expected outputs kept in files are rewritten with `UPDATE_EXPECT=1`.

#![allow(missing_docs, reason = "a test binary: nothing in it is used from outside")]

mod append;
mod browser;
mod cases;
mod cli;
mod exports;
mod format1;
mod fuzz_smoke;
mod reliability;
mod report;
mod schemas;
mod shell;
mod snapshot;
mod tamper;
mod tamper_campaign;
mod tidy;
mod trust;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `recorded_at` fixtures are appended with, so that their head hashes are reproducible.
pub const FIXTURE_CLOCK: &str = "2026-01-01T00:00:00Z";

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

pub fn fixtures() -> PathBuf {
    root().join("fixtures")
}

/// The files of `dir` with the extension `ext`, by name; at least `min` of them.
pub fn files_with(dir: &Path, ext: &str, min: usize) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    assert!(files.len() >= min, "{}: the .{ext} files are missing", dir.display());
    files
}

/// The fixture stories, by file name, in a stable order.
pub fn stories() -> Vec<PathBuf> {
    files_with(&fixtures(), "jsonl", 6)
}

pub fn update_expect() -> bool {
    std::env::var_os("UPDATE_EXPECT").is_some()
}

/// Compares `actual` with the content of `path`, or rewrites the file under `UPDATE_EXPECT=1`.
pub fn expect_file(path: &Path, actual: &str) {
    if update_expect() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path)
        .unwrap_or_else(|_| panic!("{} is missing: run with UPDATE_EXPECT=1", path.display()));
    assert_eq!(actual, expected, "{} differs (UPDATE_EXPECT=1 rewrites it)", path.display());
}

/// A file's length and a hash of its bytes, to compare files without printing them.
pub fn fingerprint(path: &Path) -> Option<(usize, u64)> {
    use std::hash::{Hash, Hasher};
    let bytes = std::fs::read(path).ok()?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    Some((bytes.len(), hasher.finish()))
}

/// A temporary folder with a ledger path in it.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox { dir: tempfile::tempdir().unwrap() }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("ledger.db")
    }

    /// `caltrail --db <sandbox ledger> args...`, with the fixture clock.
    pub fn caltrail(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_caltrail"));
        command
            .arg("--db")
            .arg(self.db())
            .args(args)
            .env_remove("CALTRAIL_DB")
            .env("CALTRAIL_RECORDED_AT", FIXTURE_CLOCK)
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        command
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.caltrail(args).output().unwrap())
    }

    pub fn append_file(&self, path: &Path) -> Run {
        self.run(&["append", path.to_str().unwrap()])
    }
}

/// What a run of the binary printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    /// The head hash an `append` printed.
    pub fn head_hash(&self) -> String {
        self.stdout.trim().rsplit(' ').next().unwrap().to_owned()
    }
}
