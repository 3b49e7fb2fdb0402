//! The layering, enforced on the source. The table of which top-level
//! module may import which is the drawing in `docs/ARCHITECTURE.md`
//! (between `<!-- layers -->` and `<!-- /layers -->`): each line
//! `module -> dep dep(Item, Item) …`, a dependency with items in
//! parentheses allowing only those. The test reads every `crate::…` path
//! of `src/` (grouped `use crate::{…}` included, comments and strings
//! left out), and fails on an import the table does not allow, on a
//! module the table does not name, and on any cycle between top-level
//! modules — in the code or in the table.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Table = BTreeMap<String, BTreeMap<String, Option<BTreeSet<String>>>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a Rust file, without its unit tests (at the end, by the
/// house's habit), comments and string literals: what names real imports.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = String::with_capacity(text.len());
    let (mut chars, mut in_string) = (text.chars().peekable(), false);
    while let Some(c) = chars.next() {
        match (in_string, c) {
            (false, '/') if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            (false, '"') => in_string = true,
            (true, '\\') => {
                chars.next();
            }
            (true, '"') => in_string = false,
            (false, c) => out.push(c),
            (true, _) => {}
        }
    }
    out
}

fn ident(text: &str) -> String {
    text.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

/// Every `(module, item)` the code names through `crate::`: the top-level
/// module and the first name after it (`crate::store::grants::x` →
/// `(store, grants)`; `use crate::store::{Db, DbConn}` → both).
fn crate_paths(code: &str) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for part in code.split("crate::").skip(1) {
        let mut groups: Vec<String> = Vec::new();
        if let Some(inner) = part.strip_prefix('{') {
            // `crate::{a, b::c, d::{e, f}}`
            let mut depth = 1;
            let mut current = String::new();
            for c in inner.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                if depth == 1 && c == ',' {
                    groups.push(std::mem::take(&mut current));
                } else {
                    current.push(c);
                }
            }
            groups.push(current);
        } else {
            groups.push(part.to_string());
        }
        for group in groups {
            let group = group.trim();
            let module = ident(group);
            if module.is_empty() {
                continue;
            }
            // `crate::Db`: a re-export at the crate's root would hide which
            // module a name comes from; the table allows none.
            if module.starts_with(|c: char| c.is_ascii_uppercase()) {
                found.insert(("crate root".to_string(), module));
                continue;
            }
            let rest = group[module.len()..].trim_start();
            let items: Vec<String> = match rest.strip_prefix("::") {
                Some(after) if after.starts_with('{') => {
                    after[1..].split('}').next().unwrap_or("").split(',').map(|i| ident(i.trim())).collect()
                }
                Some(after) => vec![ident(after)],
                None => vec!["self".into()],
            };
            for item in items.into_iter().filter(|i| !i.is_empty()) {
                found.insert((module.clone(), item));
            }
        }
    }
    found
}

/// The imports of each top-level module: module → dependency → items.
fn imports(src: &Path) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(src).unwrap();
        let top =
            relative.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(&file).unwrap());
        let entry = graph.entry(top.clone()).or_default();
        for (module, item) in crate_paths(&code) {
            if module != top {
                entry.entry(module).or_default().insert(item);
            }
        }
    }
    graph
}

/// The table drawn in ARCHITECTURE.md.
fn table() -> Table {
    let doc = include_str!("../../docs/ARCHITECTURE.md");
    let block = doc.split("<!-- layers -->").nth(1).and_then(|b| b.split("<!-- /layers -->").next());
    let block = block.expect("ARCHITECTURE.md draws the layers between <!-- layers --> and <!-- /layers -->");
    let mut table = Table::new();
    for line in block.lines().map(str::trim).filter(|l| l.contains("->")) {
        let (module, deps) = line.split_once("->").unwrap();
        let mut allowed = BTreeMap::new();
        let mut rest = deps.trim();
        while !rest.is_empty() {
            let name = ident(rest);
            assert!(!name.is_empty(), "unreadable table line: {line}");
            rest = rest[name.len()..].trim_start();
            let items = match rest.strip_prefix('(') {
                Some(inner) => {
                    let (list, after) = inner.split_once(')').expect("a closing parenthesis");
                    rest = after.trim_start();
                    Some(list.split(',').map(|i| i.trim().to_string()).collect())
                }
                None => None,
            };
            allowed.insert(name, items);
        }
        assert!(table.insert(module.trim().to_string(), allowed).is_none(), "{module} appears twice");
    }
    table
}

/// A cycle among `edges`, if there is one (depth-first search).
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(2) => return None,
            Some(1) => {
                let start = path.iter().position(|n| n == node).unwrap_or(0);
                let mut found = path[start..].to_vec();
                found.push(node.to_string());
                return Some(found);
            }
            _ => {}
        }
        state.insert(node.to_string(), 1);
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, edges, state, path) {
                return Some(found);
            }
        }
        path.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    edges.keys().find_map(|node| visit(node, edges, &mut state, &mut Vec::new()))
}

#[test]
fn every_import_is_one_the_layer_table_allows_and_no_cycle_joins_top_level_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = imports(&src);
    let table = table();
    assert!(graph.len() > 20, "the top-level modules are found: {:?}", graph.keys());
    let mut wrong = Vec::new();
    for (module, deps) in &graph {
        let Some(allowed) = table.get(module) else {
            wrong.push(format!("{module} is not in the layer table"));
            continue;
        };
        for (dep, items) in deps {
            match allowed.get(dep) {
                None => wrong.push(format!("{module} imports {dep} ({items:?}), which the table does not allow")),
                Some(Some(only)) => {
                    for item in items.iter().filter(|i| !only.contains(*i)) {
                        wrong.push(format!("{module} imports {dep}::{item}; the table allows only {only:?}"));
                    }
                }
                Some(None) => {}
            }
        }
    }
    for module in table.keys().filter(|m| !graph.contains_key(*m)) {
        wrong.push(format!("the table names {module}, which src/ does not have"));
    }
    assert!(wrong.is_empty(), "the layers do not hold:\n{}", wrong.join("\n"));

    let code_edges: BTreeMap<String, BTreeSet<String>> = graph
        .iter()
        .map(|(m, deps)| (m.clone(), deps.keys().filter(|d| graph.contains_key(*d)).cloned().collect()))
        .collect();
    assert_eq!(cycle(&code_edges), None, "a cycle of imports among top-level modules");
    let table_edges: BTreeMap<String, BTreeSet<String>> =
        table.iter().map(|(m, deps)| (m.clone(), deps.keys().cloned().collect())).collect();
    assert_eq!(cycle(&table_edges), None, "the table itself draws a cycle");
}

/// The reader of paths sees what it must: grouped imports, nested groups,
/// items, and nothing in comments or strings.
#[test]
fn the_path_reader_reads_groups_and_skips_comments_and_strings() {
    let code = code_of(
        "use crate::{audit::{self, Actor}, store};\n// crate::http in a comment\nlet s = \"crate::server\";\nuse crate::store::{Db, DbConn};\ncrate::jwt::keys::rotate();",
    );
    let found: Vec<(String, String)> = crate_paths(&code).into_iter().collect();
    let expected: Vec<(String, String)> = [
        ("audit", "self"),
        ("audit", "Actor"),
        ("jwt", "keys"),
        ("store", "Db"),
        ("store", "DbConn"),
        ("store", "self"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let mut expected = expected;
    expected.sort();
    assert_eq!(found, expected);
}

/// `src/http` never reaches storage itself: of `store` it names `Db`, the
/// handle it runs services on, and (in `http::error`) the storage error it
/// answers 503 or 500 for — no query, no model, no connection.
#[test]
fn http_names_nothing_of_the_store_but_the_handle_and_its_error() {
    let table = table();
    let allowed = table.get("http").and_then(|deps| deps.get("store")).cloned().flatten();
    let most: BTreeSet<String> = ["Db", "StoreError", "log_unavailable"].iter().map(|s| s.to_string()).collect();
    assert!(allowed.as_ref().is_some_and(|a| a.is_subset(&most)), "the table's http row allows of store: {allowed:?}");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let named = imports(&src).get("http").and_then(|deps| deps.get("store")).cloned().unwrap_or_default();
    let handlers: Vec<String> = named.iter().filter(|i| *i != "Db").cloned().collect();
    let mut files = Vec::new();
    rust_files(&src.join("http"), &mut files);
    for file in files.iter().filter(|f| !f.ends_with("error.rs") && !f.ends_with("http/mod.rs")) {
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        let of_store: Vec<_> = crate_paths(&code).into_iter().filter(|(m, _)| m == "store").collect();
        assert!(of_store.is_empty(), "{} names the store: {of_store:?} ({handlers:?})", file.display());
    }
}
