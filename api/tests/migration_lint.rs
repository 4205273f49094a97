//! The expand-only rule (api/README.md, "Migrations"), checked on every migration in
//! api/migrations: no drop, rename, type change, `SET NOT NULL` or `NOT NULL` column without a
//! default, unless the migration's header marks it `-- contract-step: <release>`.

use trading_agent::schema::{contract_step, destructive_statements};

#[test]
fn migrations_are_expand_only_unless_marked_as_a_contract_step() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut checked = 0;
    let mut refused = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "sql") {
            continue;
        }
        let sql = std::fs::read_to_string(&path).unwrap();
        checked += 1;
        if contract_step(&sql).is_some() {
            continue;
        }
        for d in destructive_statements(&sql) {
            refused.push(format!(
                "{}: {} in `{}`",
                path.file_name().unwrap().to_string_lossy(),
                d.rule,
                d.statement
            ));
        }
    }
    assert!(checked >= 2, "found only {checked} migrations in {dir:?}");
    assert!(
        refused.is_empty(),
        "destructive statements in expand-only migrations (mark a contract step with \
         `-- contract-step: <release>`, see api/README.md):\n{}",
        refused.join("\n")
    );
}
