//! The module layering `docs/architecture.md` describes, checked: every
//! `crate::` path in `src/` (outside `#[cfg(test)]` modules) must be an
//! import the table allows, the module graph has no cycle, and the
//! protocol and policy layers never name actix or diesel.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module -> the top-level modules it may import.
const ALLOWED: &[(&str, &[&str])] = &[
    ("main", &["cli"]),
    (
        "cli",
        &[
            "audit",
            "config",
            "crypto",
            "domain",
            "keys",
            "registration",
            "startup",
            "storage",
        ],
    ),
    (
        "startup",
        &[
            "background",
            "config",
            "crypto",
            "http",
            "keys",
            "state",
            "storage",
        ],
    ),
    (
        "background",
        &["audit", "config", "keys", "policy", "state", "storage"],
    ),
    (
        "http",
        &[
            "audit", "domain", "limits", "model", "pages", "policy", "protocol", "state",
        ],
    ),
    ("pages", &["domain"]),
    (
        "policy",
        &[
            "audit",
            "client_cache",
            "crypto",
            "domain",
            "hasher",
            "keys",
            "limits",
            "model",
            "protocol",
            "state",
            "storage",
        ],
    ),
    (
        "state",
        &[
            "client_cache",
            "config",
            "crypto",
            "domain",
            "hasher",
            "keys",
            "limits",
            "protocol",
        ],
    ),
    ("client_cache", &["domain", "model", "protocol", "storage"]),
    ("limits", &["config", "protocol", "storage"]),
    ("hasher", &["domain"]),
    ("keys", &["crypto", "protocol", "storage"]),
    ("audit", &[]),
    ("storage", &["domain", "model", "protocol"]),
    ("protocol", &["crypto", "domain", "model"]),
    ("registration", &["crypto", "domain", "model"]),
    ("config", &["breached"]),
    ("breached", &[]),
    ("domain", &["crypto"]),
    ("model", &["domain"]),
    ("crypto", &[]),
    ("lib", &[]),
];

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

/// The file's source without its `#[cfg(test)]` module(s).
fn production_source(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

fn top_module(src: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(src).unwrap();
    let first = relative
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// The top-level modules named by `crate::x` paths in `text`.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let preceded_by_ident = text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        if preceded_by_ident {
            continue;
        }
        let name: String = text[at + 7..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.insert(name);
        }
    }
    found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let module = top_module(&src, &file);
        let targets = crate_paths(&production_source(&file));
        let entry = edges.entry(module.clone()).or_default();
        entry.extend(targets.into_iter().filter(|t| *t != module));
    }
    edges
}

#[test]
fn every_import_is_one_the_layering_allows() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(module, may)| (*module, may.iter().copied().collect()))
        .collect();
    let mut violations = Vec::new();
    for (module, targets) in graph() {
        let Some(may) = allowed.get(module.as_str()) else {
            violations.push(format!("{module} is not in the layering table"));
            continue;
        };
        for target in targets {
            if !may.contains(target.as_str()) {
                violations.push(format!("{module} -> {target}"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports outside docs/architecture.md: {violations:?}"
    );
}

#[test]
fn the_module_graph_has_no_cycle() {
    let edges = graph();
    // Depth-first search with colours; a grey node reached again is a cycle.
    fn visit<'a>(
        node: &'a str,
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        colour: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) {
        match colour.get(node) {
            Some(1) => panic!("cycle: {path:?} -> {node}"),
            Some(_) => return,
            None => {}
        }
        colour.insert(node, 1);
        path.push(node);
        for next in edges.get(node).into_iter().flatten() {
            visit(next, edges, colour, path);
        }
        path.pop();
        colour.insert(node, 2);
    }
    let mut colour = BTreeMap::new();
    for node in edges.keys() {
        visit(node, &edges, &mut colour, &mut Vec::new());
    }
}

#[test]
fn protocol_and_policy_name_neither_actix_nor_diesel() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for layer in ["protocol", "policy"] {
        let mut files = Vec::new();
        rust_files(&src.join(layer), &mut files);
        for file in files {
            let text = production_source(&file);
            for forbidden in ["actix_web", "actix", "diesel::"] {
                let code_mentions = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .any(|l| l.contains(forbidden));
                assert!(!code_mentions, "{} names {forbidden}", file.display());
            }
        }
    }
}
