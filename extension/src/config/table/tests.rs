//! README's configuration table held to the settings table, so the documentation cannot miss a
//! variable pgwarm reads, list one it does not, or give another default.
//!
//! The rules:
//! - README's table is the first one under `## Configuration`; its first column names the
//!   variables in backticks, where a name beginning with `_` continues the row's first name
//!   (`PGWARM_DB_HOST`, `_PORT` is `PGWARM_DB_PORT` too), and its third column is the default.
//! - Its variables, in its order, are [`SETTINGS`]' names in theirs, which is also the order of
//!   `SHOW CONFIG`.
//! - With backticks removed, the default cell of a one-variable row is the row's default text
//!   (a value, or how a derived one is worked out), alone or followed by context after `; ` or
//!   ` (`: `2; on Lambda Managed Instances ...`, `1073741823 (PostgreSQL's own)`. In a row of
//!   several variables each one's default text appears in the cell as words of their own
//!   (`port 5432, name = user`). A variable with no default (`Unset::Nothing`) is left to the
//!   cell's words: `unset`, `the RDS bundle`, `a self-signed certificate made at start-up`.

use super::{Unset, SETTINGS};
use std::path::Path;

struct ReadmeRow {
    variables: Vec<String>,
    default: String,
}

fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The rows of README's configuration table, header and separator left out.
fn readme_rows(readme: &str) -> Vec<ReadmeRow> {
    let (_, section) = readme
        .split_once("\n## Configuration\n")
        .expect("README has a Configuration section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let table = section
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'));
    table.skip(2).map(readme_row).collect()
}

fn readme_row(line: &str) -> ReadmeRow {
    let cells: Vec<&str> = line
        .trim()
        .trim_matches('|')
        .split(" | ")
        .map(str::trim)
        .collect();
    assert_eq!(cells.len(), 3, "variable | meaning | default: {line}");
    let mut variables: Vec<String> = Vec::new();
    for name in cells[0].split('`').skip(1).step_by(2) {
        let name = match (name.strip_prefix('_'), variables.first()) {
            (Some(suffix), Some(first)) => {
                let (prefix, _) = first.rsplit_once('_').expect("a PGWARM_ name");
                format!("{prefix}_{suffix}")
            }
            _ => name.to_owned(),
        };
        variables.push(name);
    }
    ReadmeRow {
        variables,
        default: cells[2].replace('`', ""),
    }
}

/// Whether `cell` says `default`, as the module's rules put it.
fn agrees(cell: &str, default: &str, alone: bool) -> bool {
    if alone {
        return cell == default
            || cell.starts_with(&format!("{default}; "))
            || cell.starts_with(&format!("{default} ("));
    }
    cell.match_indices(default).any(|(at, _)| {
        let before = cell[..at].chars().next_back();
        let after = cell[at + default.len()..].chars().next();
        let apart = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric() && c != '_');
        apart(before) && apart(after)
    })
}

#[test]
fn readme_lists_the_tables_variables_in_its_order() {
    let listed: Vec<String> = readme_rows(&readme())
        .into_iter()
        .flat_map(|row| row.variables)
        .collect();
    let table: Vec<&str> = SETTINGS.iter().map(|row| row.name).collect();
    let missing: Vec<&&str> = table
        .iter()
        .filter(|n| !listed.contains(&n.to_string()))
        .collect();
    let unknown: Vec<&String> = listed
        .iter()
        .filter(|n| !table.contains(&n.as_str()))
        .collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "README's configuration table misses {missing:?} and lists {unknown:?}, which pgwarm \
         does not read"
    );
    assert_eq!(listed, table, "README's order is the table's");
}

#[test]
fn readme_gives_the_tables_defaults() {
    for readme_row in readme_rows(&readme()) {
        let alone = readme_row.variables.len() == 1;
        for name in &readme_row.variables {
            let Some(row) = SETTINGS.iter().find(|row| row.name == name) else {
                continue; // readme_lists_the_tables_variables_in_its_order names it
            };
            if row.unset == Unset::Nothing {
                continue;
            }
            let default = row.unset.text();
            assert!(
                agrees(&readme_row.default, default, alone),
                "README gives {name} the default {:?}; the table says {default:?}",
                readme_row.default
            );
        }
    }
}

#[test]
fn the_rules_read_readme_as_meant() {
    let row = readme_row("| `PGWARM_DB_HOST`, `_PORT` | the database | port 5432, name = user |");
    assert_eq!(row.variables, ["PGWARM_DB_HOST", "PGWARM_DB_PORT"]);
    assert!(agrees(&row.default, "5432", false));
    assert!(!agrees(&row.default, "543", false));
    let row = readme_row("| `PGWARM_POOL_SIZE` | at most | 2; on Lambda Managed Instances |");
    assert!(agrees(&row.default, "2", true));
    assert!(!agrees("20", "2", true));
    assert!(agrees(
        "json in Lambda, else text",
        "json in Lambda, else text",
        true
    ));
    assert!(agrees("1073741823 (PostgreSQL's own)", "1073741823", true));
}
