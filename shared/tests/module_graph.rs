//! No module of `shared` imports one that imports it back (issue 10): a cycle is how
//! configuration came to do Secrets Manager I/O and secrets to own configuration's types. The
//! graph is read from the source: a module depends on every module it names through `crate::`,
//! `super::` or (a parent) a child's name; comments and `#[cfg(test)]` modules do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`db::rate_budget`; the crate root is "") → its source without comments and tests.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.insert(module_path(src, &path), code_only(&path));
            }
        }
    }
    out
}

fn module_path(src: &Path, file: &Path) -> String {
    let relative: PathBuf = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts.join("::")
}

/// The file's code before its first `#[cfg(test)]`, without `//` comments.
fn code_only(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The paths a use tree or path starting at `text` names: `db::runs::get` is one,
/// `db::{runs, progress::{self, X}}` three (`db::runs`, `db::progress::self`, `db::progress::X`).
fn use_tree(text: &str) -> Vec<String> {
    let end = text.find(|c: char| !is_path_char(c)).unwrap_or(text.len());
    let (path, rest) = text.split_at(end);
    if (!path.is_empty() && !path.ends_with("::")) || !rest.starts_with('{') {
        return vec![path.trim_end_matches(':').to_string()];
    }
    let mut depth = 0;
    let mut item_start = 1;
    let mut out = Vec::new();
    for (i, c) in rest.char_indices() {
        match c {
            '{' => depth += 1,
            '}' | ',' if depth == 1 => {
                let item = rest[item_start..i].trim();
                if !item.is_empty() {
                    out.extend(use_tree(item).into_iter().map(|p| format!("{path}{p}")));
                }
                item_start = i + 1;
                if c == '}' {
                    break;
                }
            }
            '}' => depth -= 1,
            _ => {}
        }
    }
    out
}

/// Every path after `prefix` (`crate::`), as its segments.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    code.match_indices(prefix)
        .filter(|(i, _)| !code[..*i].ends_with(is_path_char))
        .flat_map(|(i, _)| use_tree(&code[i + prefix.len()..]))
        .map(|p| {
            p.split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

/// The longest known module among `base` + a prefix of `segments`.
fn resolve(known: &BTreeMap<String, String>, base: &[&str], segments: &[String]) -> Option<String> {
    // A bare `crate::` (no module named) is the crate root, which is no import.
    let least = usize::from(base.is_empty());
    (least..=segments.len()).rev().find_map(|k| {
        let name = base
            .iter()
            .copied()
            .chain(segments[..k].iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("::");
        known.contains_key(&name).then_some(name)
    })
}

fn graph(known: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges = BTreeMap::new();
    for (module, code) in known {
        let own: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
        let mut deps = BTreeSet::new();
        for segments in paths_after(code, "crate::") {
            deps.extend(resolve(known, &[], &segments));
        }
        for (i, _) in code.match_indices("super::") {
            // A chain (`super::super::x`) is read once, from its first `super::`.
            if code[..i].ends_with(is_path_char) {
                continue;
            }
            let mut rest = &code[i..];
            let mut ups = 0;
            while let Some(tail) = rest.strip_prefix("super::") {
                ups += 1;
                rest = tail;
            }
            let base = &own[..own.len().saturating_sub(ups)];
            for path in use_tree(rest) {
                let segments: Vec<String> = path
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                // `super::*`, `super::{…}` with nothing known: the parent itself.
                deps.extend(resolve(known, base, &segments).or_else(|| {
                    let parent = base.join("::");
                    (!base.is_empty() && known.contains_key(&parent)).then_some(parent)
                }));
            }
        }
        // A parent naming a child (`budget::RateGate`, `pub use grouped::…`).
        for child in known.keys() {
            let child_parts: Vec<&str> = child.split("::").filter(|s| !s.is_empty()).collect();
            if child_parts.len() == own.len() + 1 && child_parts[..own.len()] == own[..] {
                let name = format!("{}::", child_parts[own.len()]);
                let named = code
                    .match_indices(&name)
                    .any(|(i, _)| !code[..i].ends_with(is_path_char));
                if named {
                    deps.insert(child.clone());
                }
            }
        }
        deps.remove(module);
        edges.insert(module.clone(), deps);
    }
    edges
}

/// A cycle through `start`, if any, as the modules on it.
fn cycle_from(
    edges: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    for next in &edges[path.last().unwrap().as_str()] {
        if next == start {
            let mut cycle = path.clone();
            cycle.push(next.clone());
            return Some(cycle);
        }
        if !path.contains(next) && next.as_str() > start {
            path.push(next.clone());
            if let Some(cycle) = cycle_from(edges, start, path) {
                return Some(cycle);
            }
            path.pop();
        }
    }
    None
}

#[test]
fn no_module_of_shared_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let known = modules(&src);
    assert!(known.len() > 20, "read {} modules", known.len());
    let edges = graph(&known);
    // The reader sees real imports: the handler uses the database modules.
    assert!(edges["handler"].contains("db"), "{:?}", edges["handler"]);
    let cycles: Vec<Vec<String>> = known
        .keys()
        .filter_map(|m| cycle_from(&edges, m, &mut vec![m.clone()]))
        .collect();
    assert!(cycles.is_empty(), "import cycles: {cycles:?}");
}

#[test]
fn the_reader_finds_a_cycle_when_there_is_one() {
    let mut known = BTreeMap::new();
    known.insert(
        "config".to_string(),
        "use crate::secrets::Secret;".to_string(),
    );
    known.insert(
        "secrets".to_string(),
        "use crate::config::Config;".to_string(),
    );
    known.insert(
        "provider".to_string(),
        "pub mod budget; use budget::Gate;".to_string(),
    );
    known.insert(
        "provider::budget".to_string(),
        "use super::ProviderError;".to_string(),
    );
    let edges = graph(&known);
    let cycle = cycle_from(&edges, "config", &mut vec!["config".to_string()]);
    assert_eq!(
        cycle,
        Some(vec!["config".into(), "secrets".into(), "config".into()])
    );
    let cycle = cycle_from(&edges, "provider", &mut vec!["provider".to_string()]);
    assert!(cycle.is_some(), "a parent and a child naming each other");
}
