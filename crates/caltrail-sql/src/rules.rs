//! The compliance rules of RULES.md: one SQL file each in `queries/`, compiled into the binary so
//! that it judges exactly the SQL that was reviewed.

/// One rule: its name (the file's name) and its SQL.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The file's name without `.sql`: the rule's name in findings.
    pub name: &'static str,
    /// The query.
    pub sql: &'static str,
}

macro_rules! rule {
    ($name:literal) => {
        Rule { name: $name, sql: include_str!(concat!("../../../queries/", $name, ".sql")) }
    };
}

/// Every rule, in the order `check` runs them.
pub const RULES: &[Rule] = &[
    rule!("over_allocated"),
    rule!("over_entitlement"),
    rule!("not_entitled"),
    rule!("issued_beyond_installed"),
    rule!("cals_left_on_source"),
    rule!("version_above_server"),
    rule!("resurrected_by_restore"),
    rule!("lost_not_reinstalled"),
    rule!("migration_unknown_pack"),
    rule!("issued_while_inactive"),
    rule!("cal_older_than_host"),
    rule!("revocation_limit"),
    rule!("per_user_revoked"),
];

/// The reports: not rules, tables (RULES.md, "Reports").
pub const TRUE_UP: Rule = rule!("true_up");
/// The `position` report (RULES.md, "Reports").
pub const POSITION: Rule = rule!("position");

/// The columns every finding has, in this order.
pub const FINDING_COLUMNS: &[&str] = &["rule", "severity", "subject", "message", "quantity"];

/// The rule of that name.
pub fn find(name: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.name == name)
}
