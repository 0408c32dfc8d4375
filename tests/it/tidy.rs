//! Tidy checks, after rust-analyzer's `xtask/src/tidy.rs`: promises ARCHITECTURE.md makes that
//! the compiler does not hold, checked over the files of the repository.

use std::path::{Path, PathBuf};

use crate::root;

/// The repository's files under `dir` with one of `extensions`, skipping build output.
fn files(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy();
            if path.is_dir() {
                if !matches!(name.as_ref(), "target" | ".git" | "corpus" | "artifacts") {
                    pending.push(path);
                }
            } else if path.extension().is_some_and(|e| extensions.contains(&&*e.to_string_lossy()))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_rust_file_opens_with_what_it_owns() {
    let mut missing = Vec::new();
    for dir in ["crates", "tests", "fuzz"] {
        for path in files(&root().join(dir), &["rs"]) {
            let text = std::fs::read_to_string(&path).unwrap();
            if !text.starts_with("//!") {
                missing.push(path.strip_prefix(root()).unwrap().display().to_string());
            }
        }
    }
    assert_eq!(missing, Vec::<String>::new(), "files without a //! line");
}

#[test]
fn every_query_is_a_rule_or_a_report_and_says_what_it_finds() {
    let mut known: Vec<&str> = caltrail_sql::RULES.iter().map(|rule| rule.name).collect();
    known.extend([caltrail_sql::POSITION.name, caltrail_sql::TRUE_UP.name]);
    let mut found = Vec::new();
    for path in files(&root().join("queries"), &["sql"]) {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with(&format!("-- {name}: ")),
            "queries/{name}.sql opens with `-- {name}: ` and what it finds"
        );
        assert!(
            known.contains(&name.as_str()),
            "queries/{name}.sql is in neither RULES nor the reports"
        );
        found.push(name);
    }
    for name in known {
        assert!(found.iter().any(|f| f == name), "{name} has no file in queries/");
        let slt = root().join(format!("crates/caltrail-sql/tests/slt/{name}.slt"));
        assert!(slt.is_file(), "{name} has no sqllogictest file ({})", slt.display());
    }
}

/// The crates that may name each heavy or low-level dependency, in their manifests and code.
const OWNERS: &[(&str, &[&str])] = &[
    ("rusqlite", &["caltrail-store", "caltrail-bench"]),
    ("datafusion", &["caltrail-sql"]),
    ("arrow", &["caltrail-sql"]),
    ("parquet", &["caltrail-sql"]),
];

/// The names in a manifest's `[dependencies]` table (not dev-dependencies: tests may open the
/// ledger file with SQLite to damage it).
fn dependencies(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_dependencies = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
        } else if in_dependencies && let Some((name, _)) = line.split_once('=') {
            names.push(name.trim().split('.').next().unwrap().to_owned());
        }
    }
    names
}

#[test]
fn each_heavy_dependency_stays_in_its_crate() {
    let mut wrong = Vec::new();
    for manifest in files(&root().join("crates"), &["toml"]) {
        let krate = manifest.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
        let deps = dependencies(&std::fs::read_to_string(&manifest).unwrap());
        let sources = files(&manifest.parent().unwrap().join("src"), &["rs"]);
        for (dependency, owners) in OWNERS {
            if owners.contains(&krate.as_str()) {
                continue;
            }
            if deps.iter().any(|d| d == dependency) {
                wrong.push(format!("{krate}/Cargo.toml depends on {dependency}"));
            }
            for source in &sources {
                let text = std::fs::read_to_string(source).unwrap();
                for pattern in [format!("{dependency}::"), format!("caltrail_sql::{dependency}")] {
                    if text
                        .lines()
                        .any(|l| !l.trim_start().starts_with("//") && l.contains(&pattern))
                    {
                        wrong.push(format!(
                            "{} names {pattern}",
                            source.strip_prefix(root()).unwrap().display()
                        ));
                    }
                }
            }
        }
    }
    assert_eq!(wrong, Vec::<String>::new());
}

/// The tables are named once, by `caltrail_sql::Table`; the README and the benchmark, which
/// cannot take the list from the code, must name the same tables.
#[test]
fn the_readme_and_the_benchmark_name_every_table() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let tables = readme.split_once("\n## Tables\n").unwrap().1.split_once("\n## ").unwrap().0;
    for name in caltrail_sql::TABLE_NAMES {
        assert!(
            tables.contains(&format!("**`{name}`**")),
            "README's Tables section describes {name}"
        );
    }
    let bench = std::fs::read_to_string(root().join("bench/run")).unwrap();
    let listed = bench.split_once("TABLES = [").unwrap().1.split_once(']').unwrap().0;
    let listed: Vec<&str> =
        listed.split(',').map(|n| n.trim().trim_matches('"')).filter(|n| !n.is_empty()).collect();
    assert_eq!(listed, caltrail_sql::TABLE_NAMES, "bench/run's TABLES");
}
