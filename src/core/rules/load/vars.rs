//! The `vars:` section of a rule file: each variable's default, pattern and options,
//! and the effective values after `--set`, each checked wherever it comes from (a
//! value that could change a query or a command's meaning is refused).

use super::common::LoadOptions;
use crate::core::rules::{query, template};
use crate::core::rules::{VarDecl, MAX_VAR_LEN};
use crate::core::yaml::diag::{did_you_mean, Diagnostic};
use crate::core::yaml::walk::{fields, string, Cx};
use crate::core::yaml::{Node, Pos, Value};
use std::collections::{BTreeMap, BTreeSet};

/// A variable's value shown in a message: quoted and escaped (control characters
/// become visible), and cut after 80 characters.
pub(super) fn shown(value: &str) -> String {
    let cut: String = value.chars().take(80).collect();
    if cut.len() < value.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// What is wrong with a variable's value wherever it comes from (the file, `--set`, the
/// API): (message, help). One line of text of at most `MAX_VAR_LEN` bytes.
pub(super) fn value_problem(name: &str, value: &str) -> Option<(String, String)> {
    if value.len() > MAX_VAR_LEN {
        return Some((
            format!(
                "the value of variable `{name}` is {} bytes long (at most {MAX_VAR_LEN})",
                value.len()
            ),
            "a variable names a release (a service, a version, a namespace); give a shorter value"
                .into(),
        ));
    }
    let (i, c) = value.char_indices().find(|(_, c)| c.is_control())?;
    Some((
        format!(
            "the value of variable `{name}`, {}, contains a control character (U+{:04X}) at byte {i}",
            shown(value),
            c as u32
        ),
        "a value is one line of text: control characters, tabs and newlines included, are refused"
            .into(),
    ))
}

/// The first line of a regex error worth showing (the crate's own is a drawing).
pub(super) fn regex_message(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: ").map(str::to_string))
        .unwrap_or(text)
}

/// A declared variable and where its parts are written.
pub(super) struct Declared {
    decl: VarDecl,
    key: Pos,
    default_pos: Option<Pos>,
    pattern_pos: Pos,
}

/// One entry under `vars:`: `name: default` or `name: {default, pattern, allow_option,
/// description}`. None if it is wrong (reported).
pub(super) fn compile_var(cx: &mut Cx, name: &str, k: &Node, v: &Node) -> Option<Declared> {
    let single = |cx: &mut Cx, n: &Node, what: String| match &n.value {
        Value::Seq(_) | Value::Map(_) => {
            cx.error(
                format!("{what} must be a single value, found {}", n.kind()),
                n.pos,
            );
            None
        }
        Value::Null => Some(None),
        _ => Some(n.scalar_text()),
    };
    let Value::Map(_) = &v.value else {
        let default = single(cx, v, format!("variable `{name}`"))?;
        return Some(Declared {
            decl: VarDecl {
                default,
                pattern: None,
                allow_option: false,
                description: None,
            },
            key: k.pos,
            default_pos: Some(v.pos),
            pattern_pos: k.pos,
        });
    };
    let f = fields(
        cx,
        v,
        &format!("variable `{name}`"),
        &["default", "pattern", "allow_option", "description"],
    )?;
    let mut ok = true;
    let default = match f.get("default") {
        Some(n) => {
            single(cx, n, format!("the default of variable `{name}`")).unwrap_or_else(|| {
                ok = false;
                None
            })
        }
        None => None,
    };
    let mut pattern = None;
    if let Some(n) = f.get("pattern") {
        match &n.value {
            Value::Str(p) => match regex::Regex::new(p) {
                Ok(re) => {
                    if !p.starts_with('^') || !p.ends_with('$') {
                        cx.warn(
                            format!("the pattern of variable `{name}` is not anchored: any value that merely contains a match passes"),
                            n.pos,
                            format!("write `^{}$` so that the whole value must match", p.trim_start_matches('^').trim_end_matches('$')),
                        );
                    }
                    pattern = Some(re);
                }
                Err(e) => {
                    cx.error_help(
                        format!(
                            "the pattern of variable `{name}` is not a valid regex: {}",
                            regex_message(&e)
                        ),
                        n.pos,
                        "e.g. `pattern: \"^[a-z0-9-]+$\"` (Rust regex syntax)",
                    );
                    ok = false;
                }
            },
            _ => {
                cx.error(
                    format!(
                        "the pattern of variable `{name}` must be a string (a regex), found {}",
                        n.kind()
                    ),
                    n.pos,
                );
                ok = false;
            }
        }
    }
    let allow_option = match f.get("allow_option").map(|n| (n, &n.value)) {
        None => false,
        Some((_, Value::Bool(b))) => *b,
        Some((n, _)) => {
            cx.error_help(
                format!(
                    "allow_option of variable `{name}` must be true or false, found {}",
                    n.kind()
                ),
                n.pos,
                "`allow_option: true` lets a value starting with `-` begin a command argument (an option)",
            );
            ok = false;
            false
        }
    };
    let description = match f.get("description") {
        Some(n) => {
            let d = string(cx, n, &format!("the description of variable `{name}`"));
            ok &= d.is_some();
            d
        }
        None => None,
    };
    ok.then(|| Declared {
        decl: VarDecl {
            default,
            pattern,
            allow_option,
            description,
        },
        key: k.pos,
        default_pos: f.get("default").map(|n| n.pos),
        pattern_pos: f.get("pattern").map_or(k.pos, |n| n.pos),
    })
}

/// The effective values; the names that may begin a command argument with `-`; and,
/// in `check`, the names left unset (each gets a stand-in).
pub(super) type CompiledVars = (BTreeMap<String, String>, BTreeSet<String>, BTreeSet<String>);

/// The effective variables (defaults overridden by `--set`), each checked against the
/// file's restrictions, and the names that may begin a command argument with `-`.
pub(super) fn compile_vars(
    cx: &mut Cx,
    node: Option<&Node>,
    opts: &LoadOptions,
) -> Option<CompiledVars> {
    let mut declared: BTreeMap<String, Declared> = BTreeMap::new();
    let mut ok = true;
    if let Some(node) = node {
        match &node.value {
            Value::Map(entries) => {
                for (k, v) in entries {
                    let name = k.scalar_text().unwrap_or_default();
                    if query::is_clock(&name) {
                        cx.error_help(
                            format!("`{name}` is a reserved name: rollwatch fills `${{{name}}}` from the watch's clock at each poll"),
                            k.pos,
                            "rename the variable; `${watch.elapsed}` and `${watch.start}` need no declaration",
                        );
                        // The file fails on this error; the rest is still checked.
                        continue;
                    }
                    if !template::is_name(&name) {
                        cx.error(format!("invalid variable name `{name}`: use letters, digits and `_`, not starting with a digit"), k.pos);
                        ok = false;
                        continue;
                    }
                    match compile_var(cx, &name, k, v) {
                        Some(d) => {
                            declared.insert(name, d);
                        }
                        None => ok = false,
                    }
                }
            }
            Value::Null => {}
            _ => {
                cx.error(
                    format!(
                        "`vars` must be a mapping of names to default values, found {}",
                        node.kind()
                    ),
                    node.pos,
                );
                return None;
            }
        }
    }
    let names: Vec<&str> = declared.keys().map(String::as_str).collect();
    let mut overrides = BTreeMap::new();
    for (k, v) in opts.sets {
        if query::is_clock(k) {
            cx.diags.push(
                Diagnostic::error(
                    format!("`--set {k}=...`: `{k}` is reserved: rollwatch fills it from the watch's clock at each poll"),
                    None,
                )
                .with_help("no value can be given to it")
                .with_public(format!("var `{k}`: the name is reserved")),
            );
            ok = false;
            continue;
        }
        if declared.contains_key(k) {
            overrides.insert(k.clone(), v.clone());
        } else {
            let help = match did_you_mean(k, &names) {
                Some(near) => format!("did you mean `{near}`?"),
                None if names.is_empty() => {
                    "the file declares no variables; add them under `vars:`".into()
                }
                None => format!("declared variables: {}", names.join(", ")),
            };
            let msg = format!(
                "`{k}={}`: the file declares no variable `{k}`",
                shown(v).trim_matches('"')
            );
            let public = format!(
                "var `{}`: the rule file declares no such variable",
                shown(k).trim_matches('"')
            );
            if opts.check {
                cx.diags.push(
                    Diagnostic::warning(msg, None)
                        .with_help(help)
                        .with_public(public),
                );
            } else {
                cx.diags.push(
                    Diagnostic::error(msg, None)
                        .with_help(help)
                        .with_public(public),
                );
                ok = false;
            }
        }
    }
    let mut out = BTreeMap::new();
    // In `check`, variables left unset: the query check gives each a stand-in.
    let mut free = BTreeSet::new();
    for (name, d) in &declared {
        let given = overrides.get(name);
        let value = match given.or(d.decl.default.as_ref()) {
            Some(v) => v,
            None if opts.check => {
                out.insert(name.clone(), name.clone());
                free.insert(name.clone());
                continue;
            }
            None => {
                cx.error_help(
                    format!("variable `{name}` has no default and was given no value"),
                    d.key,
                    format!("run with `--set {name}=VALUE`"),
                );
                cx.public("vars: the rule file requires a variable that was not given");
                ok = false;
                continue;
            }
        };
        // A given value has no place in the file; a default points at itself.
        let at = if given.is_some() { None } else { d.default_pos };
        if let Some((msg, help)) = value_problem(name, value) {
            let mut d = Diagnostic::error(msg, at).with_help(help);
            if given.is_some() {
                let why = if value.len() > MAX_VAR_LEN {
                    format!("the value is longer than {MAX_VAR_LEN} bytes")
                } else {
                    "the value contains a control character".into()
                };
                d = d.with_public(format!("var `{name}`: {why}"));
            }
            cx.diags.push(d);
            ok = false;
            continue;
        }
        if let Some(re) = &d.decl.pattern {
            if !re.is_match(value) {
                let what = if given.is_some() {
                    format!("the value {} given for variable `{name}`", shown(value))
                } else {
                    format!("the default {} of variable `{name}`", shown(value))
                };
                cx.error_help(
                    format!("{what} does not match its pattern `{}`", re.as_str()),
                    d.pattern_pos,
                    format!("the rule file restricts what `{name}` may be"),
                );
                if given.is_some() {
                    cx.public(format!(
                        "var `{name}`: the value is not one the rule file allows"
                    ));
                }
                ok = false;
                continue;
            }
        }
        out.insert(name.clone(), value.clone());
    }
    let allow_option = declared
        .iter()
        .filter(|(_, d)| d.decl.allow_option)
        .map(|(n, _)| n.clone())
        .collect();
    ok.then_some((out, allow_option, free))
}
