//! The house keeps its shape (issue 11): floors run one way, and no file imports a
//! floor above its own.
//!
//! This reads every `crate::` and `super::` path in `src/**/*.rs` (it need not be
//! clever: no macro expansion, no name resolution beyond "the deepest module that has
//! a file"), maps each file to its floor, and fails on:
//! - a file that imports a higher floor (core 1 < io 2 < run 3 < show 4 < cmd 5 < cli 6);
//! - any module but `main` importing `cli` (the top-level parser);
//! - a command importing another command (what they share is in `cmd`'s shared
//!   modules, `SHARED`);
//! - the agent runtime (`run/agent`) importing a command (`cmd`);
//! - the Prometheus client (`io/prom`) importing the evaluator (`core::eval`);
//! - an import cycle among the files (a file using its own parent module's items, the
//!   usual `super::` or `crate::` path up, is not counted as an edge: a module and the
//!   files below it are one unit);
//! - a parent-child cycle (issue 20): a child file that imports an item *defined* in
//!   its parent's file (`super::x`, `crate::a::b::x`, or a `super::*` glob) while the
//!   parent imports from that child (`child::y`, `self::child::y`, or an absolute path).
//!   The one-way rule above does not count these edges, so they are checked apart: a
//!   parent that both serves its children and uses them is two modules in one file, and
//!   what the children need moves to a sibling file;
//! - a path into a top-level module the floor map does not know (add it here, and to
//!   ARCHITECTURE.md, when one is created);
//! - a module file that does not open with a `//!` doc saying why it exists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The modules of `cmd/` that are not commands but what the commands share.
const SHARED: [&str; 5] = ["agent_client", "args", "rule_file", "session", "signals"];

/// The floor of each top-level module. `say` is the crate-root macro (`crate::say!`),
/// usable from every floor.
fn floor(top: &str) -> Option<u8> {
    Some(match top {
        "say" => 0,
        "core" => 1,
        "io" => 2,
        "run" => 3,
        "show" => 4,
        "cmd" => 5,
        "cli" => 6,
        _ => return None,
    })
}

/// A source file: its path under `src/` (with `/`) and its module path.
struct File {
    rel: String,
    module: Vec<String>,
    text: String,
}

fn module_of(rel: &str) -> Vec<String> {
    let stem = rel.strip_suffix(".rs").unwrap_or(rel);
    let mut parts: Vec<String> = stem.split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

fn read_tree(dir: &Path, root: &Path, out: &mut Vec<File>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            read_tree(&p, root, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&p).unwrap();
            out.push(File {
                module: module_of(&rel),
                rel,
                text,
            });
        }
    }
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expands what follows `crate::` or `super::` at `s`: `a::b::c`, or a brace group
/// `{a::b, c::{d, e}, self}`. Each path as its segments.
fn parse_paths(s: &str) -> Vec<Vec<String>> {
    fn tree(s: &[char], i: &mut usize) -> Vec<Vec<String>> {
        let skip_ws = |i: &mut usize| {
            while *i < s.len() && s[*i].is_whitespace() {
                *i += 1;
            }
        };
        skip_ws(i);
        if *i < s.len() && s[*i] == '{' {
            *i += 1;
            let mut out = Vec::new();
            loop {
                skip_ws(i);
                if *i >= s.len() {
                    return out;
                }
                if s[*i] == '}' {
                    *i += 1;
                    return out;
                }
                if s[*i] == ',' {
                    *i += 1;
                    continue;
                }
                let before = *i;
                out.extend(tree(s, i));
                if *i == before {
                    // Something this reader does not understand (`*`, `as x`): skip it.
                    *i += 1;
                }
            }
        }
        let start = *i;
        while *i < s.len() && is_ident(s[*i]) {
            *i += 1;
        }
        if *i == start {
            return vec![vec![]];
        }
        let seg: String = s[start..*i].iter().collect();
        if s.get(*i) == Some(&':') && s.get(*i + 1) == Some(&':') {
            *i += 2;
            return tree(s, i)
                .into_iter()
                .map(|mut rest| {
                    rest.insert(0, seg.clone());
                    rest
                })
                .collect();
        }
        vec![vec![seg]]
    }
    let chars: Vec<char> = s.chars().take(4000).collect();
    tree(&chars, &mut 0)
}

/// Every absolute module path a file names, with the line it is on.
fn references(file: &File) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    // Joined without comment lines, so a `use` group spread over lines parses whole.
    let mut code = String::new();
    let mut line_of = Vec::new();
    for (n, line) in file.text.lines().enumerate() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        line_of.extend(std::iter::repeat_n(n + 1, line.len() + 1));
        code.push_str(line);
        code.push('\n');
    }
    let bytes = code.as_bytes();
    for keyword in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(found) = code[from..].find(keyword) {
            let at = from + found;
            from = at + keyword.len();
            let prev = at.checked_sub(1).map(|p| bytes[p] as char);
            if prev.is_some_and(|c| is_ident(c) || c == '$' || c == ':') {
                continue;
            }
            let base: Vec<String> = if keyword == "crate::" {
                Vec::new()
            } else {
                // `super::super::x` climbs once per `super`.
                let mut m = file.module.clone();
                m.pop();
                let mut rest = &code[from..];
                while let Some(r) = rest.strip_prefix("super::") {
                    m.pop();
                    rest = r;
                    from += "super::".len();
                }
                m
            };
            for p in parse_paths(&code[from..]) {
                let p: Vec<String> = p.into_iter().filter(|s| s != "self").collect();
                let mut abs = base.clone();
                abs.extend(p);
                if !abs.is_empty() {
                    out.push((line_of[at], abs));
                }
            }
        }
    }
    out
}

/// Everything wrong with the shape of the tree; empty when the house stands.
fn violations(files: &[File]) -> Vec<String> {
    let mut bad = Vec::new();
    let by_module: BTreeMap<&[String], usize> = files
        .iter()
        .enumerate()
        .filter(|(_, f)| f.rel != "main.rs")
        .map(|(i, f)| (f.module.as_slice(), i))
        .collect();
    let mut edges: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        let is_test = f.module.last().is_some_and(|m| m.ends_with("tests"));
        if !is_test && !f.text.starts_with("//!") {
            bad.push(format!(
                "src/{}: does not open with a `//!` doc saying why it exists",
                f.rel
            ));
        }
        // The crate root and the binary sit above every floor.
        if f.rel == "lib.rs" || f.rel == "main.rs" {
            continue;
        }
        let own = floor(&f.module[0]).unwrap_or_else(|| {
            bad.push(format!(
                "src/{}: top-level module `{}` has no floor",
                f.rel, f.module[0]
            ));
            0
        });
        for (line, path) in references(f) {
            let at = format!("src/{}:{line}", f.rel);
            let shown = format!("crate::{}", path.join("::"));
            // The file behind the path: the deepest module that has one.
            let target = (1..=path.len())
                .rev()
                .find_map(|n| by_module.get(&path[..n]).copied());
            if let Some(t) = target {
                let into_own_parent = f.module.starts_with(&files[t].module);
                if t != i && !into_own_parent {
                    edges.entry(i).or_default().insert(t);
                }
            }
            let Some(theirs) = floor(&path[0]) else {
                bad.push(format!(
                    "{at}: `{shown}` is in no floor (top-level module `{}`)",
                    path[0]
                ));
                continue;
            };
            if theirs > own {
                bad.push(format!(
                    "{at}: `{shown}` is on floor {theirs}, above this file's floor {own} ({}); floors run one way, down",
                    f.module[0]
                ));
            }
            if path[0] == "cli" && f.module[0] != "cli" {
                bad.push(format!(
                    "{at}: `{shown}`: only `main` uses the top-level parser"
                ));
            }
            if f.module[0] == "cmd"
                && path[0] == "cmd"
                && path.len() > 1
                && !SHARED.contains(&path[1].as_str())
                && f.module.get(1) != Some(&path[1])
            {
                bad.push(format!(
                    "{at}: `{shown}`: a command never borrows from another command; move what both need to a shared cmd module ({SHARED:?}) or below"
                ));
            }
            if f.module.starts_with(&["run".into(), "agent".into()]) && path[0] == "cmd" {
                bad.push(format!(
                    "{at}: `{shown}`: the agent runtime imports no command"
                ));
            }
            if f.module.starts_with(&["io".into(), "prom".into()])
                && path.starts_with(&["core".into(), "eval".into()])
            {
                bad.push(format!(
                    "{at}: `{shown}`: the Prometheus client imports nothing from the evaluator (plain data is in core::series)"
                ));
            }
        }
    }
    let cycles: Vec<(&str, &str)> = parent_child_cycles(files)
        .into_iter()
        .map(|(p, c)| (files[p].rel.as_str(), files[c].rel.as_str()))
        .collect();
    for pair in cycles {
        bad.push(format!(
            "parent-child cycle: src/{} imports from src/{}, which imports an item defined in src/{}; move what the child needs to a sibling file",
            pair.0, pair.1, pair.0
        ));
    }
    if let Some(cycle) = find_cycle(files.len(), &edges) {
        let names: Vec<String> = cycle
            .iter()
            .map(|&i| format!("src/{}", files[i].rel))
            .collect();
        bad.push(format!("import cycle: {}", names.join(" -> ")));
    }
    bad
}

/// The file's code without its comment lines (as `references` reads it).
fn code_of(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `text` defines an item called `name` (not a re-export: `pub use` is no
/// definition, so a parent that only re-exports a sibling's items is no cycle).
fn defines(text: &str, name: &str) -> bool {
    let code = code_of(text);
    [
        "fn ",
        "struct ",
        "enum ",
        "trait ",
        "type ",
        "const ",
        "static ",
        "union ",
        "macro_rules! ",
    ]
    .iter()
    .any(|kw| {
        let needle = format!("{kw}{name}");
        code.match_indices(&needle).any(|(at, _)| {
            let before = code[..at].chars().next_back();
            let after = code[at + needle.len()..].chars().next();
            !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
        })
    })
}

/// Whether `text` defines any item at all (what a `super::*` glob would pull in).
fn defines_any(text: &str) -> bool {
    let code = code_of(text);
    code.lines().any(|l| {
        let l = l.trim_start();
        let l = l.strip_prefix("pub ").unwrap_or(l);
        let l = l.strip_prefix("pub(crate) ").unwrap_or(l);
        let l = l.strip_prefix("pub(super) ").unwrap_or(l);
        let l = l.strip_prefix("async ").unwrap_or(l);
        [
            "fn ",
            "struct ",
            "enum ",
            "trait ",
            "type ",
            "const ",
            "static ",
            "macro_rules! ",
        ]
        .iter()
        .any(|kw| l.starts_with(kw))
    })
}

/// Whether the parent's code names the child module by a relative path (`child::x`,
/// `self::child::x`): `references` only reads `crate::` and `super::` paths.
fn names_child(text: &str, child: &str) -> bool {
    let code = code_of(text);
    let needle = format!("{child}::");
    code.match_indices(&needle).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        !before.is_some_and(|c| is_ident(c) || c == '$')
            && (before != Some(':') || code[..at].ends_with("self::"))
            && !code[..at].ends_with("super::")
            && !code[..at].ends_with("crate::")
    })
}

/// (parent, child) file pairs where the child imports an item defined in the parent's
/// file and the parent imports from the child.
fn parent_child_cycles(files: &[File]) -> Vec<(usize, usize)> {
    let by_module: BTreeMap<&[String], usize> = files
        .iter()
        .enumerate()
        .filter(|(_, f)| f.rel != "main.rs")
        .map(|(i, f)| (f.module.as_slice(), i))
        .collect();
    let target_of = |path: &[String]| {
        (1..=path.len())
            .rev()
            .find_map(|n| by_module.get(&path[..n]).copied())
            .or_else(|| by_module.get(&[][..]).copied())
    };
    // An inline `mod tests { use super::*; }` names its own file's module: not read.
    let outside_tests = |f: &File| File {
        rel: f.rel.clone(),
        module: f.module.clone(),
        text: f
            .text
            .split("#[cfg(test)]\nmod tests {")
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    let files: Vec<File> = files.iter().map(outside_tests).collect();
    let mut out = Vec::new();
    for (c, child) in files.iter().enumerate() {
        let Some((name, parent_module)) = child.module.split_last() else {
            continue;
        };
        let Some(&p) = by_module.get(parent_module) else {
            continue;
        };
        if p == c {
            continue;
        }
        let parent = &files[p];
        let child_uses_parent = references(child).iter().any(|(_, path)| {
            if target_of(path) != Some(p) {
                return false;
            }
            match path.get(parent.module.len()) {
                None => defines_any(&parent.text),
                Some(item) => defines(&parent.text, item),
            }
        });
        let parent_uses_child = names_child(&parent.text, name)
            || references(parent)
                .iter()
                .any(|(_, path)| target_of(path) == Some(c));
        if child_uses_parent && parent_uses_child {
            out.push((p, c));
        }
    }
    out
}

/// A cycle in the file graph (depth-first, three colours), as the files around it.
fn find_cycle(n: usize, edges: &BTreeMap<usize, BTreeSet<usize>>) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    fn visit(
        v: usize,
        edges: &BTreeMap<usize, BTreeSet<usize>>,
        colour: &mut [Colour],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        colour[v] = Colour::Grey;
        stack.push(v);
        for &w in edges.get(&v).into_iter().flatten() {
            match colour[w] {
                Colour::Grey => {
                    let start = stack.iter().position(|&x| x == w).unwrap();
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(w);
                    return Some(cycle);
                }
                Colour::White => {
                    if let Some(c) = visit(w, edges, colour, stack) {
                        return Some(c);
                    }
                }
                Colour::Black => {}
            }
        }
        stack.pop();
        colour[v] = Colour::Black;
        None
    }
    let mut colour = vec![Colour::White; n];
    for v in 0..n {
        if colour[v] == Colour::White {
            if let Some(c) = visit(v, edges, &mut colour, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn source_tree() -> Vec<File> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    read_tree(&root, &root, &mut files);
    files
}

#[test]
fn issue_11_floors_run_one_way_and_no_file_imports_in_a_circle() {
    let files = source_tree();
    assert!(
        files.iter().any(|f| f.rel == "run/agent/mod.rs"),
        "the tree was not read"
    );
    let bad = violations(&files);
    assert!(
        bad.is_empty(),
        "the house lost its shape (see ARCHITECTURE.md):\n{}",
        bad.join("\n")
    );
}

fn file(rel: &str, text: &str) -> File {
    File {
        rel: rel.to_string(),
        module: module_of(rel),
        text: format!("//! Why.\n{text}"),
    }
}

/// The guard itself: each rule catches the mistake it names, in a small made-up tree.
#[test]
fn issue_11_the_guard_catches_each_broken_rule() {
    let base = || {
        vec![
            file("lib.rs", "pub mod core;"),
            file("core/mod.rs", "pub mod eval;\npub mod series;"),
            file("core/series.rs", ""),
            file("core/eval/mod.rs", "use crate::core::series::Labels;"),
            file("io/prom/mod.rs", "use crate::core::series::Sample;"),
            file("run/agent/mod.rs", "use crate::io::prom::PromClient;"),
            file("cmd/args.rs", "use crate::run::agent::Agent;"),
            file(
                "cmd/serve.rs",
                "use crate::{cmd::args::PromArgs, run::agent};",
            ),
            file("cli.rs", "use crate::cmd;"),
        ]
    };
    assert_eq!(violations(&base()), Vec::<String>::new());
    let with = |rel: &str, line: &str| {
        let mut files = base();
        let f = files.iter_mut().find(|f| f.rel == rel).unwrap();
        f.text.push_str(line);
        violations(&files)
    };
    let upward = with("core/eval/mod.rs", "\nuse crate::io::prom::QueryError;");
    assert!(
        upward.iter().any(|v| v.contains("above this file's floor")),
        "{upward:?}"
    );
    let grouped = with(
        "io/prom/mod.rs",
        "\nuse crate::{core::series, run::agent::Agent};",
    );
    assert!(
        grouped
            .iter()
            .any(|v| v.contains("crate::run::agent::Agent")),
        "{grouped:?}"
    );
    let cli = with("cmd/serve.rs", "\nuse crate::cli::Cli;");
    assert!(cli.iter().any(|v| v.contains("only `main`")), "{cli:?}");
    let borrow = with("cmd/args.rs", "\nuse crate::cmd::serve::ServeArgs;");
    assert!(
        borrow.iter().any(|v| v.contains("another command")),
        "{borrow:?}"
    );
    let agent = with("run/agent/mod.rs", "\nuse crate::cmd::args::PromArgs;");
    assert!(
        agent.iter().any(|v| v.contains("imports no command")),
        "{agent:?}"
    );
    let eval = with("io/prom/mod.rs", "\nuse crate::core::eval::Labels;");
    assert!(
        eval.iter()
            .any(|v| v.contains("nothing from the evaluator")),
        "{eval:?}"
    );
    let cycle = with(
        "core/series.rs",
        "\n#[serde(with = \"crate::core::eval::x\")]",
    );
    assert!(
        cycle.iter().any(|v| v.starts_with("import cycle")),
        "{cycle:?}"
    );
    let unknown = with("cmd/args.rs", "\nuse crate::util::x;");
    assert!(
        unknown.iter().any(|v| v.contains("in no floor")),
        "{unknown:?}"
    );
    // Comments and other crates' paths are not imports.
    let quiet = with(
        "core/eval/mod.rs",
        "\n// crate::cmd::x in a comment\nuse tokio::sync::mpsc; // $crate::cmd",
    );
    assert!(!quiet.iter().any(|v| v.contains("crate::cmd")), "{quiet:?}");
    let mut undocumented = base();
    undocumented[2].text = "use std::fmt;".into();
    assert!(
        violations(&undocumented)
            .iter()
            .any(|v| v.contains("src/core/series.rs: does not open")),
        "a module without its doc is caught"
    );
}

/// The parent-child check on a made-up tree: it catches the cycle, in each spelling,
/// and lets alone what is no cycle.
#[test]
fn issue_20_the_guard_catches_a_parent_child_cycle() {
    let tree = |parent: &str, child: &str| {
        vec![
            file("lib.rs", "pub mod core;"),
            file("core/mod.rs", "pub mod calc;"),
            file(
                "core/calc/mod.rs",
                &format!("mod judge;\npub struct Rule;\n{parent}"),
            ),
            file("core/calc/judge.rs", child),
        ]
    };
    let cycles = |parent: &str, child: &str| {
        violations(&tree(parent, child))
            .into_iter()
            .filter(|v| v.starts_with("parent-child cycle"))
            .collect::<Vec<_>>()
    };
    let caught = [
        ("pub use judge::Evidence;", "use super::Rule;"),
        ("use self::judge::Evidence;", "use super::Rule;"),
        ("fn f() { judge::score(); }", "use super::*;"),
        (
            "use crate::core::calc::judge::Evidence;",
            "use crate::core::calc::Rule;",
        ),
        ("use judge::{Evidence, score};", "use super::{Rule, Other};"),
    ];
    for (parent, child) in caught {
        let found = cycles(parent, child);
        assert_eq!(found.len(), 1, "{parent:?} / {child:?}: {found:?}");
        assert!(
            found[0].contains("src/core/calc/mod.rs imports from src/core/calc/judge.rs"),
            "{found:?}"
        );
    }
    let no_cycle = [
        // The child uses the parent, the parent never names the child.
        ("", "use super::Rule;"),
        // The parent uses the child, which takes nothing from the parent.
        (
            "pub use judge::Evidence;",
            "use crate::core::series::Labels;",
        ),
        // What the child takes is a re-export, defined elsewhere.
        (
            "pub use judge::Evidence;\npub use crate::core::series::Labels;",
            "use super::Labels;",
        ),
        // The child's own inline tests take the child's items, not the parent's.
        (
            "pub use judge::Evidence;",
            "pub struct Evidence;\n#[cfg(test)]\nmod tests {\n    use super::*;\n}",
        ),
        // A name that only contains the child's.
        ("fn f() { prejudge::x(); }", "use super::Rule;"),
    ];
    for (parent, child) in no_cycle {
        let found = cycles(parent, child);
        assert!(found.is_empty(), "{parent:?} / {child:?}: {found:?}");
    }
}
