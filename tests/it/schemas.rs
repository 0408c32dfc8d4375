//! The JSON Schemas in `schemas/` and the Rust event types agree: every fixture event is valid
//! for both, and every malformed fixture is refused by both, except the few refusals that need
//! more than one line or more than JSON can say, listed here with the reason.

use std::collections::BTreeMap;

use caltrail_events::Event;
use serde_json::Value;

use crate::{fixtures, root};

/// Malformed fixtures a JSON Schema cannot refuse, and why.
const BEYOND_SCHEMA: &[(&str, &str)] = &[
    ("conflicting-id-in-batch", "needs the other lines"),
    ("keypack-name-reused", "needs the other lines"),
    ("migration-pack-name-taken", "needs the other lines"),
    ("retracts-unknown", "needs the other lines"),
    ("retracts-retraction", "needs the other lines"),
    ("retracts-twice", "needs the other lines"),
    ("duplicate-json-key", "a JSON parser keeps one of the two values"),
    ("not-utf8", "not text at all"),
    ("downgrade-from-older", "compares two fields"),
    ("migration-pack-name-reused", "compares two fields"),
    ("restore-backup-after-restore", "compares two fields"),
];

struct Schemas {
    envelope: jsonschema::Validator,
    by_type: BTreeMap<String, jsonschema::Validator>,
}

impl Schemas {
    fn load() -> Schemas {
        let dir = root().join("schemas");
        let compile = |name: &str| {
            let text = std::fs::read_to_string(dir.join(format!("{name}.schema.json"))).unwrap();
            let schema: Value = serde_json::from_str(&text).unwrap();
            jsonschema::draft202012::options()
                .should_validate_formats(true)
                .build(&schema)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        let by_type = caltrail_events::EventType::ALL
            .iter()
            .map(|t| (t.as_str().to_owned(), compile(t.as_str())))
            .collect();
        Schemas { envelope: compile("envelope"), by_type }
    }

    /// Whether the line is valid for the envelope schema and the schema of its type.
    fn accepts(&self, line: &str) -> bool {
        let Ok(value) = serde_json::from_str::<Value>(line) else { return false };
        if !self.envelope.is_valid(&value) {
            return false;
        }
        let event_type = value["type"].as_str().unwrap();
        self.by_type[event_type].is_valid(&value)
    }
}

#[test]
fn every_fixture_event_is_valid_for_the_schemas_and_the_types() {
    let schemas = Schemas::load();
    let mut n = 0;
    for story in crate::stories() {
        for line in std::fs::read_to_string(&story).unwrap().lines() {
            assert!(schemas.accepts(line), "schema refuses {line}");
            Event::from_json(line).unwrap_or_else(|e| panic!("types refuse {line}: {e}"));
            n += 1;
        }
    }
    assert!(n > 40);
}

#[test]
fn every_malformed_fixture_is_refused_by_the_schemas_and_the_types() {
    let schemas = Schemas::load();
    let dir = fixtures().join("malformed");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .map(|p| p.file_stem().unwrap().to_str().unwrap().to_owned())
        .collect();
    names.sort();
    for name in names {
        let bytes = std::fs::read(dir.join(format!("{name}.jsonl"))).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let schema_refuses = lines.iter().any(|line| !schemas.accepts(line));
        let types_refuse = lines.iter().any(|line| Event::from_json(line).is_err());
        let beyond = BEYOND_SCHEMA.iter().find(|(n, _)| *n == name);
        match beyond {
            Some((_, why)) if *why == "needs the other lines" => {
                assert!(!schema_refuses && !types_refuse, "{name}: each line alone is valid");
            }
            Some(_) => {
                assert!(
                    !schema_refuses,
                    "{name} is listed as beyond the schema, but it refuses it"
                );
                assert!(types_refuse || std::str::from_utf8(&bytes).is_err(), "{name}");
            }
            None => {
                assert!(schema_refuses, "the schema accepts {name}");
                assert!(types_refuse, "the types accept {name}");
            }
        }
    }
}

#[test]
fn optional_fields_as_null_are_valid_for_both() {
    let schemas = Schemas::load();
    let line = r#"{"id":"x","type":"keypack.removed","at":"2025-01-01T00:00:00+02:00","actor":null,"note":null,"data":{"server":"ls01","keypack":"p","quantity":null}}"#;
    assert!(schemas.accepts(line));
    Event::from_json(line).unwrap();
}
