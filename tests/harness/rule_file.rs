//! The one rule-file builder of the tests: the sections in the loader's order (vars,
//! watch, rollback, pause, rules, then anything else such as `notify:`), each written
//! once here, so that a test says only what differs in its file. The commands are
//! `sh -c` lines that append to `@DIR@/actions.log` (`Scratch::rules` fills in
//! `@DIR@`), which is how the tests see what ran and when.

/// A rule file being built; `build()` renders it.
#[derive(Debug, Clone, Default)]
pub struct RuleFile {
    vars: Vec<(String, String)>,
    watch: Vec<String>,
    rollback: Option<String>,
    pause: Option<String>,
    rules: Vec<String>,
    tail: Vec<String>,
}

/// A rule file with no section yet.
pub fn rule_file() -> RuleFile {
    RuleFile::default()
}

/// A command section: `sh -c <shell>`, and its timeout if given.
fn command(shell: &str, timeout: Option<&str>) -> String {
    let mut out = format!("  command: [\"sh\", \"-c\", \"{shell}\"]\n");
    if let Some(t) = timeout {
        out.push_str(&format!("  timeout: {t}\n"));
    }
    out
}

impl RuleFile {
    /// A variable under `vars:`; an empty value declares it without a default (given
    /// with `--set` or by the agent's API).
    pub fn var(mut self, name: &str, value: &str) -> RuleFile {
        self.vars.push((name.to_string(), value.to_string()));
        self
    }

    /// Lines of the `watch:` section, as written (each indented by two spaces).
    pub fn watch(mut self, lines: &str) -> RuleFile {
        self.watch.push(lines.to_string());
        self
    }

    /// `rollback:` running `sh -c <shell>`.
    pub fn rollback(mut self, shell: &str, timeout: Option<&str>) -> RuleFile {
        self.rollback = Some(command(shell, timeout));
        self
    }

    /// `rollback:` with its body as written (indented by two spaces).
    pub fn rollback_raw(mut self, body: &str) -> RuleFile {
        self.rollback = Some(format!("{body}\n"));
        self
    }

    /// `pause:` running `sh -c <shell>`.
    pub fn pause(mut self, shell: &str, timeout: Option<&str>) -> RuleFile {
        self.pause = Some(command(shell, timeout));
        self
    }

    /// `pause:` with its body as written (indented by two spaces).
    pub fn pause_raw(mut self, body: &str) -> RuleFile {
        self.pause = Some(format!("{body}\n"));
        self
    }

    /// A rule: its name, its query (none: `body` has it) and the rest of its keys as
    /// written (each indented by four spaces).
    pub fn rule(mut self, name: &str, query: Option<&str>, body: &str) -> RuleFile {
        let mut out = format!("  - name: {name}\n");
        if let Some(q) = query {
            out.push_str(&format!("    query: {q}\n"));
        }
        out.push_str(body);
        out.push('\n');
        self.rules.push(out);
        self
    }

    /// Anything after the rules, as written (`notify:`, ...).
    pub fn tail(mut self, text: &str) -> RuleFile {
        self.tail.push(text.to_string());
        self
    }

    /// The file's text.
    pub fn build(&self) -> String {
        let mut out = String::new();
        if !self.vars.is_empty() {
            out.push_str("vars:\n");
            for (name, value) in &self.vars {
                if value.is_empty() {
                    out.push_str(&format!("  {name}:\n"));
                } else {
                    out.push_str(&format!("  {name}: {value}\n"));
                }
            }
        }
        out.push_str("watch:\n");
        for lines in &self.watch {
            out.push_str(lines);
            out.push('\n');
        }
        if let Some(r) = &self.rollback {
            out.push_str("rollback:\n");
            out.push_str(r);
        }
        if let Some(p) = &self.pause {
            out.push_str("pause:\n");
            out.push_str(p);
        }
        out.push_str("rules:\n");
        for r in &self.rules {
            out.push_str(r);
        }
        for t in &self.tail {
            out.push_str(t);
            out.push('\n');
        }
        out
    }
}

/// The query the tests' exporter series go by: `rw_value{test="<test>"}`.
pub fn series(test: &str) -> String {
    format!("rw_value{{test=\"{test}\"}}")
}

/// The same series, its test given by the `${test}` variable.
pub const SERIES_OF_VAR: &str = "rw_value{test=\"${test}\"}";

/// A rule file with one rule `r` on the test's series (`rw_value{test="<test>"}`) whose
/// rollback and pause append "<action> <rule> <unix ms>" to @DIR@/actions.log, read
/// back with `logged_actions`.
pub fn logging_actions(test: &str, rule: &str, watch: &str) -> String {
    rule_file()
        .var("test", test)
        .watch(watch)
        .rollback(
            "echo rollback $ROLLWATCH_RULE $(date +%s%3N) >> @DIR@/actions.log",
            Some("30s"),
        )
        .pause(
            "echo pause $ROLLWATCH_RULE $(date +%s%3N) >> @DIR@/actions.log",
            Some("30s"),
        )
        .rule("r", Some(SERIES_OF_VAR), rule)
        .build()
}

/// (action, rule, unix ms) of each line of the actions.log `logging_actions` writes.
pub fn logged_actions(s: &super::Scratch) -> Vec<(String, String, u64)> {
    s.lines("actions.log")
        .iter()
        .map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            (
                parts[0].to_string(),
                parts[1].to_string(),
                parts[2].parse().unwrap(),
            )
        })
        .collect()
}
