//! Schema compatibility between releases (pure: no I/O).
//!
//! A rollback runs the previous release against a database the newer one has migrated. That works
//! because migrations are **expand-only** between adjacent releases (api/README.md, "Migrations"):
//! a binary ignores applied migrations it does not know ([`SchemaVersions::compare`] lists them)
//! and refuses only a database older than it needs. [`destructive_statements`] is the lint that
//! keeps migrations expand-only (run by `cargo test`, api/tests/migration_lint.rs).

use serde::Serialize;
use utoipa::ToSchema;

/// The header that marks a migration as the contract step of a later release (allowed to drop,
/// rename or tighten what an older release still uses): `-- contract-step: <release>`.
pub const CONTRACT_STEP_HEADER: &str = "-- contract-step:";

/// The schema versions a binary expects and a database holds (`/healthz` `schema`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SchemaVersions {
    /// The newest migration this binary knows.
    #[schema(example = 20250101000002i64)]
    pub expected: i64,
    /// The newest migration applied to the database (`null`: none).
    #[schema(example = 20250101000002i64)]
    pub found: Option<i64>,
    /// Applied migrations this binary does not know (a newer release applied them); ignored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<i64>,
    /// Migrations this binary needs that the database lacks (only with `SKIP_MIGRATIONS`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<i64>,
}

impl SchemaVersions {
    /// Compares the migrations a binary knows with those applied successfully to a database.
    pub fn compare(known: &[i64], applied: &[i64]) -> Self {
        let mut unknown: Vec<i64> = applied
            .iter()
            .copied()
            .filter(|v| !known.contains(v))
            .collect();
        let mut missing: Vec<i64> = known
            .iter()
            .copied()
            .filter(|v| !applied.contains(v))
            .collect();
        unknown.sort_unstable();
        missing.sort_unstable();
        SchemaVersions {
            expected: known.iter().copied().max().unwrap_or(0),
            found: applied.iter().copied().max(),
            unknown,
            missing,
        }
    }

    /// Whether the database holds everything this binary needs (unknown newer migrations are fine).
    pub fn is_usable(&self) -> bool {
        self.missing.is_empty()
    }

    /// Why a database older than this binary needs is refused.
    pub fn refusal(&self) -> String {
        format!(
            "the database schema is older than this binary needs: found version {}, expected {} \
             (missing {:?}); run `trading-agent migrate` of this release, or start without SKIP_MIGRATIONS",
            self.found
                .map_or_else(|| "none".to_owned(), |v| v.to_string()),
            self.expected,
            self.missing
        )
    }
}

/// A statement the expand-only rule refuses, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destructive {
    /// What the rule forbids (`DROP TABLE`, `RENAME`, `type change`, `NOT NULL without a default`...).
    pub rule: &'static str,
    /// The statement, normalised (comments removed, whitespace collapsed).
    pub statement: String,
}

/// The release a migration is the contract step of, when its header says so.
pub fn contract_step(sql: &str) -> Option<&str> {
    sql.lines()
        .map(str::trim)
        .take_while(|l| l.starts_with("--") || l.is_empty())
        .find_map(|l| l.strip_prefix(CONTRACT_STEP_HEADER))
        .map(str::trim)
        .filter(|release| !release.is_empty())
}

/// The statements of `sql` that an older release running against the migrated database could trip
/// over: dropping a table, column, type, view, function, trigger, sequence or default; renaming;
/// changing a column's type; `SET NOT NULL`; adding a `NOT NULL` column without a `DEFAULT`;
/// `TRUNCATE`. Dropping an index or a constraint, or `DROP NOT NULL`, only relaxes and is allowed
/// (but an index an older release names in `ON CONFLICT` must stay).
pub fn destructive_statements(sql: &str) -> Vec<Destructive> {
    let mut found = Vec::new();
    for statement in statements(sql) {
        let words: Vec<&str> = statement.split(' ').collect();
        let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
        let at = |i: usize| upper.get(i).map(String::as_str).unwrap_or("");
        let mut rules = Vec::new();
        for i in 0..upper.len() {
            match at(i) {
                "DROP" => match at(i + 1) {
                    "INDEX" | "CONSTRAINT" => {}
                    "NOT" if at(i + 2) == "NULL" => {}
                    _ => rules.push("DROP"),
                },
                "RENAME" => rules.push("RENAME"),
                "TRUNCATE" => rules.push("TRUNCATE"),
                "SET" if at(i + 1) == "NOT" && at(i + 2) == "NULL" => rules.push("SET NOT NULL"),
                "TYPE" if i >= 2 && (at(i - 1) == "DATA" || is_alter_column(&upper, i)) => {
                    rules.push("column type change")
                }
                _ => {}
            }
        }
        if at(0) == "ALTER" && at(1) == "TABLE" && adds_not_null_without_default(&upper) {
            rules.push("ADD COLUMN ... NOT NULL without DEFAULT");
        }
        rules.dedup();
        found.extend(rules.into_iter().map(|rule| Destructive {
            rule,
            statement: statement.clone(),
        }));
    }
    found
}

/// `ALTER [COLUMN] name TYPE` ending at `type_at`.
fn is_alter_column(upper: &[String], type_at: usize) -> bool {
    let before = |n: usize| type_at.checked_sub(n).map(|i| upper[i].as_str());
    before(2) == Some("ALTER") || (before(2) == Some("COLUMN") && before(3) == Some("ALTER"))
}

/// Whether an `ALTER TABLE` adds a column `NOT NULL` (not `IS NOT NULL` in a check) without a
/// `DEFAULT` in the same `ADD` clause.
fn adds_not_null_without_default(upper: &[String]) -> bool {
    let clauses = upper.split(|w| w == "ADD").skip(1);
    clauses
        .filter(|clause| {
            !matches!(
                clause.first().map(String::as_str),
                Some("CONSTRAINT" | "CHECK" | "PRIMARY" | "UNIQUE" | "FOREIGN")
            )
        })
        .any(|clause| {
            let not_null = clause
                .windows(2)
                .enumerate()
                .any(|(i, w)| w[0] == "NOT" && w[1] == "NULL" && (i == 0 || clause[i - 1] != "IS"));
            not_null && !clause.iter().any(|w| w == "DEFAULT" || w == "GENERATED")
        })
}

/// The statements of `sql`: comments and dollar-quoted bodies removed, words and punctuation
/// separated by single spaces, split at `;`.
fn statements(sql: &str) -> Vec<String> {
    let mut text = String::with_capacity(sql.len());
    let mut rest = sql;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.find('\n').map_or("", |i| &after[i..]);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |i| &after[i + 2..]);
        } else if let Some(after) = rest.strip_prefix("$$") {
            rest = after.find("$$").map_or("", |i| &after[i + 2..]);
            text.push_str(" $body$ ");
        } else if let Some(after) = rest.strip_prefix('\'') {
            // A string literal is one word, whatever it says.
            rest = after.find('\'').map_or("", |i| &after[i + 1..]);
            text.push_str(" 'literal' ");
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            if c.is_alphanumeric() || c == '_' || c == '.' || c == '"' {
                text.push(c);
            } else if c == ';' {
                text.push_str(" ; ");
            } else if !c.is_whitespace() {
                text.push(' ');
                text.push(c);
                text.push(' ');
            } else {
                text.push(' ');
            }
            rest = &rest[c.len_utf8()..];
        }
    }
    text.split(';')
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(sql: &str) -> Vec<&'static str> {
        destructive_statements(sql)
            .into_iter()
            .map(|d| d.rule)
            .collect()
    }

    #[test]
    fn expand_steps_pass() {
        let expand = "
            -- drop nothing, rename nothing: comments do not count
            CREATE TABLE balances (currency text PRIMARY KEY, balance numeric NOT NULL);
            ALTER TABLE candles ADD COLUMN final boolean NOT NULL DEFAULT false;
            ALTER TABLE trades
                ADD COLUMN exits jsonb NOT NULL DEFAULT '{}'::jsonb,
                ADD COLUMN peak_price numeric,
                ADD COLUMN exit_reason text CHECK (exit_reason IS NOT NULL OR peak_price IS NULL);
            ALTER TABLE signals ADD CONSTRAINT positive CHECK (price IS NOT NULL);
            CREATE UNIQUE INDEX one_open ON trades (symbol) WHERE status = 'open';
            DROP INDEX trades_one_open_per_symbol;
            ALTER TABLE trades ALTER COLUMN exit_fee DROP NOT NULL;
            ALTER TABLE trades DROP CONSTRAINT trades_check;
            INSERT INTO balances SELECT 'DROP TABLE x; RENAME', 1;
            CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DROP TABLE x; END $$;
        ";
        assert_eq!(rules(expand), Vec::<&str>::new());
    }

    #[test]
    fn destructive_steps_are_named() {
        assert_eq!(rules("DROP TABLE account;"), ["DROP"]);
        assert_eq!(rules("alter table trades drop column profit;"), ["DROP"]);
        assert_eq!(rules("ALTER TABLE trades DROP profit"), ["DROP"]);
        assert_eq!(
            rules("ALTER TABLE trades ALTER COLUMN fee DROP DEFAULT"),
            ["DROP"]
        );
        assert_eq!(rules("ALTER TABLE trades RENAME COLUMN a TO b"), ["RENAME"]);
        assert_eq!(rules("ALTER TABLE trades RENAME TO deals"), ["RENAME"]);
        assert_eq!(
            rules("ALTER TABLE trades ALTER COLUMN quantity TYPE bigint"),
            ["column type change"]
        );
        assert_eq!(
            rules("ALTER TABLE trades ALTER quantity SET DATA TYPE bigint"),
            ["column type change"]
        );
        assert_eq!(
            rules("ALTER TABLE trades ALTER COLUMN exit_reason SET NOT NULL"),
            ["SET NOT NULL"]
        );
        assert_eq!(
            rules("ALTER TABLE trades ADD COLUMN owner text NOT NULL"),
            ["ADD COLUMN ... NOT NULL without DEFAULT"]
        );
        assert_eq!(
            rules("ALTER TABLE t ADD COLUMN a int DEFAULT 0, ADD COLUMN b int NOT NULL"),
            ["ADD COLUMN ... NOT NULL without DEFAULT"]
        );
        assert_eq!(rules("TRUNCATE candles"), ["TRUNCATE"]);
        let two = destructive_statements("CREATE TABLE a (x int); DROP TABLE b; DROP VIEW c;");
        assert_eq!(two.len(), 2);
        assert_eq!(two[0].statement, "DROP TABLE b");
    }

    #[test]
    fn a_contract_step_is_declared_in_the_header() {
        assert_eq!(
            contract_step(
                "-- Remove the old column.\n-- contract-step: 0.3.0\nALTER TABLE t DROP c;"
            ),
            Some("0.3.0")
        );
        assert_eq!(contract_step("-- contract-step:\nDROP TABLE t;"), None);
        assert_eq!(
            contract_step("CREATE TABLE t (x int);\n-- contract-step: 0.3.0\n"),
            None,
            "only the header counts"
        );
    }

    #[test]
    fn versions_are_compared_both_ways() {
        let same = SchemaVersions::compare(&[1, 2], &[1, 2]);
        assert!(same.is_usable());
        assert_eq!((same.expected, same.found), (2, Some(2)));

        let newer = SchemaVersions::compare(&[1, 2], &[1, 2, 3]);
        assert!(newer.is_usable(), "a newer database is fine: expand-only");
        assert_eq!(newer.unknown, [3]);
        assert_eq!((newer.expected, newer.found), (2, Some(3)));

        let older = SchemaVersions::compare(&[1, 2, 3], &[1, 2]);
        assert!(!older.is_usable());
        assert_eq!(older.missing, [3]);
        let message = older.refusal();
        assert!(message.contains("found version 2, expected 3"), "{message}");

        let empty = SchemaVersions::compare(&[1], &[]);
        assert_eq!(empty.found, None);
        assert!(empty.refusal().contains("found version none"));
    }
}
