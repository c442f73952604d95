//! The shape of the code, checked: the layers use only those below them, `core` has no import
//! circle (between its rooms, nor between its files), and no function outside tests is longer
//! than 100 lines. Read from the sources as text (rustfmt's layout), std only; no cluster.
//!
//! An import is any `crate::…` or `super::…` path in code (not in comments), `use` or inline,
//! grouped (`{a, b}`) or not; it points at the longest module its path names. `mod x;`
//! declarations are not imports. Test modules (`#[cfg(test)] mod tests`) and the property tests
//! are left out: tests may reach across.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read src") {
        let p = entry.expect("dir entry").path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The module path of a file: `src/core/model/source.rs` → `core::model::source`,
/// `src/core/kinds/mod.rs` → `core::kinds`, `src/lib.rs` → `` (the crate root).
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).expect("under src");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().to_string()).collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_string());
    }
    parts.join("::")
}

/// The code of a file without its test module, as (line number, line) pairs.
fn code_lines(file: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(file).expect("read a source file");
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .windows(2)
        .position(|w| w[0].trim() == "#[cfg(test)]" && w[1].trim_start_matches("pub(crate) ").starts_with("mod tests"))
        .unwrap_or(lines.len());
    lines[..end].iter().enumerate().map(|(i, l)| (i + 1, l.to_string())).collect()
}

fn is_test_only(file: &Path) -> bool {
    file.ends_with("core/properties.rs")
}

/// The paths a line names after `crate::` or `super::` (as segments, `super` kept), with
/// grouped imports expanded.
fn paths_in(line: &str) -> Vec<Vec<String>> {
    let code = line.split("//").next().unwrap_or("");
    let mut out = Vec::new();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            // `$crate::` is a path too; `xcrate::` is not.
            let before = code[..at].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let head = if start == "super::" { vec!["super".to_string()] } else { vec![] };
            out.extend(expand(head, &code[from..]));
        }
    }
    out
}

/// Reads `a::b::{c, d::e}` into `[a, b, c]`, `[a, b, d, e]` (after `head`).
fn expand(head: Vec<String>, rest: &str) -> Vec<Vec<String>> {
    let mut segs = head;
    let mut s = rest;
    loop {
        let ident: String = s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if ident.is_empty() {
            break;
        }
        segs.push(ident.clone());
        s = &s[ident.len()..];
        match s.strip_prefix("::") {
            Some(r) => s = r,
            None => return vec![segs],
        }
    }
    let Some(inner) = s.strip_prefix('{') else { return vec![segs] };
    // The group, up to its closing brace (groups nest).
    let (mut depth, mut end) = (1, inner.len());
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = i;
                    break;
                }
            }
            _ => {}
        }
    }
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    let group = &inner[..end];
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    let mut out = vec![segs.clone()];
    for item in items.iter().map(|i| i.trim()).filter(|i| !i.is_empty() && *i != "self") {
        out.extend(expand(segs.clone(), item));
    }
    out
}

/// The module a path points at: the longest prefix of it that is a module.
fn resolve(from: &str, path: &[String], modules: &BTreeSet<String>) -> Option<String> {
    let mut base: Vec<String> = Vec::new();
    let mut rest = path;
    if path.first().is_some_and(|s| s == "super") {
        base = from.split("::").filter(|s| !s.is_empty()).map(String::from).collect();
        while rest.first().is_some_and(|s| s == "super") {
            base.pop()?;
            rest = &rest[1..];
        }
    }
    let mut best = None;
    for n in 0..=rest.len() {
        let mut p = base.clone();
        p.extend(rest[..n].iter().cloned());
        let p = p.join("::");
        if modules.contains(&p) {
            best = Some(p);
        }
    }
    best
}

/// Every import edge between modules (module → modules it uses), with where each was seen.
fn imports() -> BTreeMap<String, BTreeMap<String, String>> {
    let files: Vec<PathBuf> = rust_files(&src()).into_iter().filter(|f| !is_test_only(f)).collect();
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for f in &files {
        let from = module_of(f);
        for (n, line) in code_lines(f) {
            let t = line.trim_start();
            if t.starts_with("//") || (t.contains("mod ") && t.trim_end().ends_with(';') && !t.contains("::")) {
                continue;
            }
            for p in paths_in(&line) {
                if let Some(to) = resolve(&from, &p, &modules).filter(|to| *to != from && !to.is_empty()) {
                    let at = format!("{}:{n}", f.strip_prefix(src()).unwrap().display());
                    edges.entry(from.clone()).or_default().entry(to).or_insert(at);
                }
            }
        }
    }
    edges
}

/// A circle in `graph`, as the nodes on it, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let i = stack.iter().position(|s| s == m).expect("on the stack");
                    let mut c = stack[i..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(m, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if state.get(n).copied().unwrap_or(0) == 0
            && let Some(c) = visit(n, graph, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

/// Module → the modules it uses.
type Graph = BTreeMap<String, BTreeSet<String>>;
/// (from, to) → where the first such import was seen.
type Seen = BTreeMap<(String, String), String>;

/// The graph of `edges` with each module mapped by `group` (`None`: left out).
fn grouped(
    edges: &BTreeMap<String, BTreeMap<String, String>>,
    group: impl Fn(&str) -> Option<String>,
) -> (Graph, Seen) {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut seen = BTreeMap::new();
    for (from, tos) in edges {
        for (to, at) in tos {
            if let (Some(a), Some(b)) = (group(from), group(to))
                && a != b
            {
                g.entry(a.clone()).or_default().insert(b.clone());
                seen.entry((a, b)).or_insert_with(|| at.clone());
            }
        }
    }
    (g, seen)
}

fn explain_circle(c: &[String], seen: &BTreeMap<(String, String), String>) -> String {
    c.windows(2)
        .map(|w| format!("{} → {} ({})", w[0], w[1], seen[&(w[0].clone(), w[1].clone())]))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The first `depth` segments of a module path under `core` (`None` outside it).
fn in_core(m: &str, depth: usize) -> Option<String> {
    let parts: Vec<&str> = m.split("::").collect();
    (parts[0] == "core" && parts.len() > 1).then(|| parts[..parts.len().min(depth)].join("::"))
}

#[test]
fn core_has_no_import_circle_between_rooms_or_files() {
    let edges = imports();
    let (rooms, seen) = grouped(&edges, |m| in_core(m, 2));
    assert!(rooms.len() >= 4, "core's rooms were found: {rooms:?}");
    if let Some(c) = circle(&rooms) {
        panic!("an import circle between the rooms of core: {}", explain_circle(&c, &seen));
    }
    let (files, seen) = grouped(&edges, |m| in_core(m, usize::MAX));
    if let Some(c) = circle(&files) {
        panic!("an import circle between the files of core: {}", explain_circle(&c, &seen));
    }
}

#[test]
fn the_layers_use_only_those_below_them() {
    let edges = imports();
    let (layers, seen) = grouped(&edges, |m| Some(m.split("::").next().unwrap_or(m).to_string()));
    if let Some(c) = circle(&layers) {
        panic!("an import circle between the top-level modules: {}", explain_circle(&c, &seen));
    }
    let core_uses: Vec<String> = layers
        .get("core")
        .into_iter()
        .flatten()
        .map(|to| format!("core → {to} ({})", seen[&("core".to_string(), to.clone())]))
        .collect();
    assert!(core_uses.is_empty(), "core is pure and uses nothing outside itself: {core_uses:?}");
    assert!(layers.get("runtime").is_some_and(|t| t.contains("core")), "the layers were found: {layers:?}");
}

#[test]
fn no_function_outside_tests_is_longer_than_100_lines() {
    let mut long = Vec::new();
    for f in rust_files(&src()).into_iter().filter(|f| !is_test_only(f)) {
        let lines = code_lines(&f);
        for (i, (n, line)) in lines.iter().enumerate() {
            let t = line.trim_start();
            let indent = &line[..line.len() - t.len()];
            let is_fn = [
                "fn ",
                "pub fn ",
                "pub(crate) fn ",
                "pub(super) fn ",
                "async fn ",
                "pub async fn ",
                "pub(crate) async fn ",
                "const fn ",
                "pub(crate) const fn ",
            ]
            .iter()
            .any(|p| t.starts_with(p));
            if !is_fn || t.ends_with(';') {
                continue;
            }
            // The body ends at the first line that is a lone `}` at the signature's indentation.
            let close = format!("{indent}}}");
            let Some(end) = lines[i + 1..].iter().position(|(_, l)| *l == close) else { continue };
            let len = end + 2;
            if len > 100 {
                long.push(format!("{}:{n} is {len} lines: {}", f.strip_prefix(src()).unwrap().display(), t));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over 100 lines (split them; a registration can be a table):\n{}",
        long.join("\n")
    );
}

/// The checks above find what they look for.
#[test]
fn the_checks_see_imports_and_circles() {
    let p = paths_in("use crate::core::model::{cause::Cause, note::{Ended, Tracked}, self};");
    assert!(p.contains(&vec!["core".into(), "model".into(), "cause".into(), "Cause".into()]), "{p:?}");
    assert!(p.contains(&vec!["core".into(), "model".into(), "note".into(), "Ended".into()]), "{p:?}");
    assert_eq!(paths_in("let x = 1; // crate::core::nothing"), Vec::<Vec<String>>::new());
    assert_eq!(paths_in("$crate::core::kinds::WorkloadKind::Job").len(), 1);
    let modules: BTreeSet<String> =
        ["core", "core::kinds", "core::kinds::kind", "core::model"].iter().map(|s| s.to_string()).collect();
    let sup = paths_in("use super::kind::{Kind, Write};");
    assert_eq!(resolve("core::kinds::deployment", &sup[0], &modules).as_deref(), Some("core::kinds::kind"));
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), ["b".to_string()].into()),
        ("b".to_string(), ["c".to_string()].into()),
        ("c".to_string(), ["a".to_string()].into()),
    ]
    .into();
    assert_eq!(circle(&g), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    let mut g = g;
    g.remove("c");
    assert_eq!(circle(&g), None);
}
