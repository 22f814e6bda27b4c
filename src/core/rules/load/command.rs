//! The `rollback:` and `pause:` sections: a command is argv (never a shell), and a
//! caller's value can neither name the program nor become one of its options.

use super::common::{duration, template_of, Outside};
use super::vars::shown;
use crate::core::rules::template::{self, Piece};
use crate::core::rules::{defaults, CommandSpec};
use crate::core::yaml::walk::{fields, required, Cx};
use crate::core::yaml::{Node, Pos, Value};
use std::collections::{BTreeMap, BTreeSet};

pub(super) fn compile_command(
    cx: &mut Cx,
    node: &Node,
    section: &str,
    vars: Option<&BTreeMap<String, String>>,
    allow_option: &BTreeSet<String>,
    outside: Option<&dyn Outside>,
) -> Option<CommandSpec> {
    let what = format!("`{section}`");
    let keys: &[&str] = if section == "rollback" {
        &["command", "timeout", "idempotent", "silence"]
    } else {
        &["command", "timeout", "idempotent"]
    };
    let f = fields(cx, node, &what, keys)?;
    let silence = match (f.get("silence"), vars) {
        (None, _) => Some(None),
        (Some(n), Some(vars)) => compile_silence(cx, n, vars, outside).map(Some),
        (Some(_), None) => None,
    };
    let timeout = match f.get("timeout") {
        Some(n) => duration(cx, n, &format!("{section} timeout"), false),
        None => Some(defaults::COMMAND_TIMEOUT),
    };
    let idempotent = match f.get("idempotent").map(|n| (n, &n.value)) {
        None => Some(false),
        Some((_, Value::Bool(b))) => Some(*b),
        Some((n, _)) => {
            cx.error_help(
                format!(
                    "{section} idempotent must be true or false, found {}",
                    n.kind()
                ),
                n.pos,
                "`idempotent: true` lets `serve` run the command again if it died while it ran",
            );
            None
        }
    };
    let cmd = required(
        cx,
        &f,
        "command",
        &what,
        "add e.g. `command: [\"kubectl\", \"rollout\", \"undo\", \"deployment/${service}\"]`",
    )?;
    let items = match &cmd.value {
        Value::Seq(items) if items.is_empty() => {
            cx.error(format!("{section} command is empty"), cmd.pos);
            return None;
        }
        Value::Seq(items) => items,
        Value::Str(s) => {
            let split: Vec<String> = s.split_whitespace().map(|w| format!("{w:?}")).collect();
            cx.error_help(
                format!("{section} command must be a list of arguments (it runs without a shell), found the string {s:?}"),
                cmd.pos,
                format!("write it as a list: [{}]", split.join(", ")),
            );
            return None;
        }
        _ => {
            cx.error(
                format!(
                    "{section} command must be a list of arguments, found {}",
                    cmd.kind()
                ),
                cmd.pos,
            );
            return None;
        }
    };
    let mut argv = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let Some(text) = (match &item.value {
            Value::Seq(_) | Value::Map(_) | Value::Null => None,
            _ => item.scalar_text(),
        }) else {
            cx.error(
                format!(
                    "{section} command argument {} must be a string, found {}",
                    i + 1,
                    item.kind()
                ),
                item.pos,
            );
            ok = false;
            continue;
        };
        if i == 0 && text.trim().is_empty() {
            cx.error(format!("{section} command's program is empty"), item.pos);
            ok = false;
            continue;
        }
        match vars {
            Some(vars) => {
                match template_of(
                    cx,
                    &text,
                    item.pos,
                    &format!("the {section} command"),
                    vars,
                    false,
                ) {
                    Some(pieces) => {
                        if i == 0 {
                            if let Some((name, _)) = template::names(&pieces).next() {
                                // The program is the file's to name: a caller's value
                                // (`--set`, the API's vars) must never choose what runs.
                                let at = cx.locate(item.pos, &format!("${{{name}}}"));
                                cx.error_help(
                                    format!(
                                        "the {section} command's program cannot contain a variable (`${{{name}}}`): a caller's value would choose what runs"
                                    ),
                                    at,
                                    "write the program's path in the file; pass values as arguments",
                                );
                                ok = false;
                                continue;
                            }
                        }
                        if i > 0 {
                            ok &= no_option_from_var(
                                cx,
                                &pieces,
                                vars,
                                allow_option,
                                item.pos,
                                section,
                                i,
                            );
                        }
                        argv.push(template::render_plain(&pieces, vars))
                    }
                    None => ok = false,
                }
            }
            None => ok = false,
        }
    }
    Some(CommandSpec {
        argv,
        timeout: timeout?,
        idempotent: idempotent?,
        silence: silence?,
    })
    .filter(|_| ok)
}

/// `silence: {alertmanager: URL, matchers: {service: "${service}"}, for: 30m}`: matcher
/// values take `${var}` like command arguments; they become JSON data, never a shell.
fn compile_silence(
    cx: &mut Cx,
    node: &Node,
    vars: &BTreeMap<String, String>,
    outside: Option<&dyn Outside>,
) -> Option<crate::core::rules::SilenceSpec> {
    let f = fields(
        cx,
        node,
        "the rollback's `silence`",
        &["alertmanager", "matchers", "for"],
    )?;
    let help = "e.g. `silence: {alertmanager: {env: ALERTMANAGER_URL}, matchers: {service: \"${service}\"}, for: 30m}`";
    let url_node = required(cx, &f, "alertmanager", "the rollback's `silence`", help);
    let m_node = required(cx, &f, "matchers", "the rollback's `silence`", help);
    let for_node = required(cx, &f, "for", "the rollback's `silence`", help);
    let url = url_node.and_then(|n| {
        let label = "the silence's alertmanager";
        let url = super::notify::secret_url(cx, n, "alertmanager", label, outside)?;
        let valid =
            reqwest::Url::parse(&url).is_ok_and(|p| matches!(p.scheme(), "http" | "https"));
        if !valid {
            cx.error(
                "the silence's alertmanager URL is not an http(s) URL (not shown: it may be a secret)",
                n.pos,
            );
        }
        valid.then_some(url)
    });
    let for_ = for_node.and_then(|n| duration(cx, n, "silence `for`", false));
    let matchers = m_node.and_then(|n| {
        let Value::Map(entries) = &n.value else {
            cx.error(
                format!(
                    "`matchers` must be a mapping of label names to values, found {}",
                    n.kind()
                ),
                n.pos,
            );
            return None;
        };
        if entries.is_empty() {
            cx.error_help(
                "`matchers` is empty: the silence would quiet every alert",
                n.pos,
                "e.g. `matchers: {service: \"${service}\"}`",
            );
            return None;
        }
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (k, v) in entries {
            let name = k.scalar_text().unwrap_or_default();
            let text = match &v.value {
                Value::Seq(_) | Value::Map(_) | Value::Null => None,
                _ => v.scalar_text(),
            };
            let Some(text) = text else {
                cx.error(
                    format!("the matcher `{name}` must be a string, found {}", v.kind()),
                    v.pos,
                );
                ok = false;
                continue;
            };
            match template_of(cx, &text, v.pos, "the silence's matchers", vars, false) {
                Some(pieces) => {
                    out.insert(name, template::render_plain(&pieces, vars));
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    });
    Some(crate::core::rules::SilenceSpec {
        url: url?,
        matchers: matchers?,
        for_: for_?,
    })
}

/// A command argument that starts with a variable's value must not start with `-`
/// (the program would read it as an option: `--all-namespaces`, `--force`) unless the
/// variable declares `allow_option: true`. Literal text the file wrote is trusted.
fn no_option_from_var(
    cx: &mut Cx,
    pieces: &[Piece],
    vars: &BTreeMap<String, String>,
    allow_option: &BTreeSet<String>,
    pos: Pos,
    section: &str,
    i: usize,
) -> bool {
    for p in pieces {
        match p {
            Piece::Lit(s) if s.is_empty() => continue,
            Piece::Lit(_) => return true,
            Piece::Var { name, .. } => {
                let value = vars.get(name).map_or("", String::as_str);
                if value.is_empty() {
                    continue;
                }
                if !value.starts_with('-') || allow_option.contains(name) {
                    return true;
                }
                cx.error_help(
                    format!(
                        "argument {} of the {section} command would start with `-` from `${{{name}}}` = {}: the program could read it as an option",
                        i + 1,
                        shown(value)
                    ),
                    cx.locate(pos, &format!("${{{name}}}")),
                    format!("give a value that does not start with `-`, or, if `{name}` may really be an option, declare it `{name}: {{default: ..., allow_option: true}}`"),
                );
                cx.public(format!("var `{name}`: the value may not start with `-`"));
                return false;
            }
        }
    }
    true
}
