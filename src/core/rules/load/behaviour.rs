//! How a rule file loads, end to end: defaults, YAML 1.1 booleans, notify secrets, every
//! error at once with its position, `--set`, durations, truncated files, refused values.

use super::*;
use crate::core::eval::NoData;
use std::time::Duration;

const BASE: &str = "watch:\n  duration: 10m\n  interval: 15s\nrollback:\n  command: [\"true\"]\nrules:\n  - name: r\n    query: up\n    above: 1\n    for: 1m\n";

fn load(text: &str) -> Result<Loaded, LoadError> {
    load_str("t.yaml", text, &LoadOptions::default())
}

fn errors(text: &str) -> Vec<String> {
    load(text)
        .unwrap_err()
        .errors()
        .map(|d| d.message.clone())
        .collect()
}

#[test]
fn minimal_file_loads_with_defaults() {
    let (spec, warnings) = load(BASE).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(spec.max_blind, defaults::MAX_BLIND);
    assert_eq!(spec.query_timeout, defaults::QUERY_TIMEOUT);
    let r = &spec.rules[0];
    assert_eq!(
        (r.interval, r.for_, r.no_data, r.action),
        (
            Duration::from_secs(15),
            Duration::from_secs(60),
            NoData::Ok,
            Action::Rollback
        )
    );
    assert_eq!(
        spec.rollback.as_ref().unwrap().timeout,
        defaults::COMMAND_TIMEOUT
    );
}

#[test]
fn yaml_1_1_booleans_stay_strings() {
    // `on:` must be the key "on", and `no` a string, not booleans.
    let text = format!("{BASE}notify:\n  - webhook: http://127.0.0.1:9/h\n    on: [rollback]\n");
    let (spec, _) = load(&text).unwrap();
    assert_eq!(spec.notify[0].on, vec!["rollback".to_string()]);
    let e = errors(&BASE.replace("for: 1m", "for: 1m\n    no_data: no"));
    assert!(
        e.iter().any(|m| m.contains("invalid no_data `no`")),
        "{e:?}"
    );
}

/// What a test's rule file may point at: given variables and files, nothing else.
#[derive(Debug, Default)]
struct Scripted {
    vars: std::collections::BTreeMap<&'static str, &'static str>,
    files: std::collections::BTreeMap<&'static str, &'static str>,
}

impl crate::core::rules::Outside for Scripted {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).map(|v| v.to_string())
    }
    fn read(&self, path: &str) -> std::io::Result<String> {
        self.files
            .get(path)
            .map(|v| v.to_string())
            .ok_or_else(|| std::io::ErrorKind::NotFound.into())
    }
}

fn load_with(text: &str, outside: &Scripted) -> Result<crate::core::rules::Loaded, LoadError> {
    let opts = LoadOptions {
        outside: Some(outside),
        ..Default::default()
    };
    load_str("t.yaml", text, &opts)
}

#[test]
fn notify_channels_take_urls_from_env_and_files_and_never_echo_them() {
    let outside = Scripted {
        vars: [("RW_HOOK", "https://hooks.example/from-env\n")].into(),
        files: [("/run/secrets/slack", "https://hooks.example/secret-token\n")].into(),
    };
    let text = format!(
        "{BASE}notify:\n  - slack: {{file: /run/secrets/slack}}\n  - webhook: {{env: RW_UNIT_SURELY_UNSET}}\n  - webhook: not a url with secret-token\n"
    );
    let err = load_with(&text, &outside).unwrap_err();
    let msgs: Vec<String> = err.errors().map(|d| d.message.clone()).collect();
    assert!(
        msgs.iter().any(|m| m.contains("`RW_UNIT_SURELY_UNSET`")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("webhook #3 URL is not an http(s) URL")),
        "{msgs:?}"
    );
    assert!(
        !err.to_string().contains("secret-token")
            || err.to_string().matches("secret-token").count() == 1,
        "the only occurrence is the source line itself"
    );
    let ok = format!(
        "{BASE}notify:\n  - slack: {{file: /run/secrets/slack}}\n    on: [rollback, notify]\n    retries: 0\n  - webhook: {{env: RW_HOOK}}\n"
    );
    let (spec, _) = load_with(&ok, &outside).unwrap();
    assert_eq!(spec.notify[0].url, "https://hooks.example/secret-token");
    assert_eq!(spec.notify[1].url, "https://hooks.example/from-env");
    assert_eq!(spec.notify[0].retries, 0);
    assert!(
        !format!("{:?}", spec.notify[0]).contains("secret-token"),
        "Debug hides the URL"
    );
}

/// The core reads nothing outside the text it is given: without an `Outside`, an
/// `env:` or `file:` source is an error naming it, never a read of this machine.
#[test]
fn without_a_host_env_and_file_sources_are_errors_not_reads() {
    let text =
        format!("{BASE}notify:\n  - slack: {{file: /etc/hostname}}\n  - webhook: {{env: PATH}}\n");
    let err = load_str("t.yaml", &text, &LoadOptions::default()).unwrap_err();
    let msgs: Vec<String> = err.errors().map(|d| d.message.clone()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("cannot read `/etc/hostname`") && m.contains("without a host")),
        "{msgs:?}"
    );
    assert!(msgs.iter().any(|m| m.contains("`PATH`")), "{msgs:?}");
}

#[test]
fn all_errors_are_reported_at_once_with_positions() {
    let text = "watch:\n  duration: 10\n  interval: 15s\nrules:\n  - name: r\n    query: up\n    above: \"5%\"\n    for_: 1m\n";
    let err = load(text).unwrap_err();
    let with_pos: Vec<_> = err.errors().filter(|d| d.pos.is_some()).collect();
    assert!(with_pos.len() >= 4, "{err}");
    let rendered = err.to_string();
    assert!(rendered.contains("t.yaml:2:13"), "{rendered}");
    assert!(rendered.contains("did you mean `for`?"), "{rendered}");
}

#[test]
fn set_overrides_defaults_and_unknown_set_is_an_error() {
    let text = format!(
        "vars:\n  job: api\n{}",
        BASE.replace("query: up", "query: up{job=\"${job}\"}")
    );
    let sets = vec![("job".to_string(), "web\"}".to_string())];
    let (spec, _) = load_str(
        "t.yaml",
        &text,
        &LoadOptions {
            outside: None,
            sets: &sets,
            check: false,
        },
    )
    .unwrap();
    assert_eq!(spec.rules[0].query, r#"up{job="web\"}"}"#);
    let bad = vec![("jbo".to_string(), "x".to_string())];
    let err = load_str(
        "t.yaml",
        &text,
        &LoadOptions {
            outside: None,
            sets: &bad,
            check: false,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("did you mean `job`?"), "{err}");
    // In check mode it is only a warning.
    assert!(load_str(
        "t.yaml",
        &text,
        &LoadOptions {
            outside: None,
            sets: &bad,
            check: true
        }
    )
    .is_ok());
}

#[test]
fn durations_need_units() {
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    assert!(parse_duration("30").unwrap_err().contains("no unit"));
    assert!(parse_duration("soon").is_err());
}

#[test]
fn never_panics_on_truncations_of_a_valid_file() {
    let text = format!("vars:\n  s: x\n{BASE}notify:\n  - slack: {{env: X}}\n");
    for i in 0..text.len() {
        if text.is_char_boundary(i) {
            let _ = load(&text[..i]);
        }
    }
}

#[test]
fn a_refused_value_points_at_the_placeholder_it_fills_even_when_repeated() {
    let text = "vars: {v: x}\nwatch:\n  duration: 1m\n  interval: 5s\nrules:\n  - name: r\n    query: |\n      # it's ${v}\n      x{a=\"${v}\"} > ${v}\n    above: 1\n    for: 0s\n    action: notify\n";
    let sets = [("v".to_string(), "a\"b".to_string())];
    let opts = LoadOptions {
        outside: None,
        sets: &sets,
        check: false,
    };
    let err = load_str("t.yaml", text, &opts).unwrap_err();
    let d = err.errors().next().unwrap();
    assert!(d.message.contains("`v`"), "{}", d.message);
    assert!(d.message.contains(r#""a\"b""#), "{}", d.message);
    // The third `${v}`: the one outside a string (line 9, column 21).
    let pos = d.pos.unwrap();
    assert_eq!((pos.line, pos.column), (9, 21), "{}", d.message);
    // In check mode an unset variable is still checked, with a stand-in that fits.
    let text = text.replace("vars: {v: x}", "vars: {v: }");
    let opts = LoadOptions {
        outside: None,
        sets: &[],
        check: true,
    };
    let (spec, _) = load_str("t.yaml", &text, &opts).unwrap();
    assert_eq!(spec.rules[0].query, "# it's v\nx{a=\"v\"} > v\n");
}

#[test]
fn alertmanager_channels_take_a_url_and_labels_and_no_on() {
    use crate::core::rules::ChannelKind;
    let text = format!(
        "{BASE}notify:\n  - alertmanager: {{url: http://127.0.0.1:9/am, labels: {{team: payments}}}}\n  - alertmanager: {{url: http://127.0.0.1:9/am}}\n"
    );
    let (spec, _) = load(&text).unwrap();
    assert_eq!(spec.notify[0].kind, ChannelKind::Alertmanager);
    assert_eq!(spec.notify[0].labels["team"], "payments");
    assert!(spec.notify[0].on.is_empty() && spec.notify[1].labels.is_empty());
    let e = errors(&format!(
        "{BASE}notify:\n  - alertmanager: {{url: http://127.0.0.1:9/am, labels: {{2bad: x}}}}\n    on: [rollback]\n  - alertmanager: {{labels: {{}}}}\n"
    ));
    for want in [
        "`2bad` is not a valid alert label name",
        "an alertmanager channel takes no `on:`",
        "the alertmanager channel has no `url`",
    ] {
        assert!(e.iter().any(|m| m.contains(want)), "{want}: {e:?}");
    }
}

#[test]
fn rollback_silence_renders_matchers_and_checks_its_keys() {
    let with = |silence: &str| {
        format!(
            "vars:\n  service: checkout\n{}",
            BASE.replace(
                "  command: [\"true\"]\n",
                &format!("  command: [\"true\"]\n  silence: {silence}\n")
            )
        )
    };
    let (spec, _) = load(&with(
        "{alertmanager: http://127.0.0.1:9/am, matchers: {service: \"${service}\"}, for: 30m}",
    ))
    .unwrap();
    let s = spec.rollback.unwrap().silence.unwrap();
    assert_eq!(s.matchers["service"], "checkout");
    assert_eq!(s.for_, Duration::from_secs(1800));
    assert!(
        !format!("{s:?}").contains("127.0.0.1"),
        "the URL is a secret"
    );
    let e = errors(&with("{alertmanager: nope, matchers: {}}"));
    for want in [
        "the silence's alertmanager URL is not an http(s) URL",
        "`matchers` is empty",
        "has no `for`",
    ] {
        assert!(e.iter().any(|m| m.contains(want)), "{want}: {e:?}");
    }
    let e = errors(&format!(
        "{BASE}pause:\n  command: [\"true\"]\n  silence: {{}}\n"
    ));
    assert!(
        e.iter().any(|m| m.contains("unknown key `silence`")),
        "{e:?}"
    );
}

#[test]
fn an_interval_under_100ms_is_refused_where_written_and_under_1s_warned() {
    // The watch's interval, and a rule's own.
    let watch = BASE.replace("interval: 15s", "interval: 1ns");
    let rule = BASE.replace("for: 1m", "for: 1m\n    interval: 99ms");
    for (text, line, col) in [(&watch, 3, 13), (&rule, 11, 15)] {
        let e = load(text).unwrap_err();
        let d = e.errors().next().expect("refused");
        assert!(d.message.contains("too short"), "{}", d.message);
        let pos = d.pos.unwrap();
        assert_eq!((pos.line, pos.column), (line, col), "{e}");
        assert!(d.help.as_deref().unwrap().contains("100ms"), "{e}");
    }
    let (spec, warnings) = load(&BASE.replace("interval: 15s", "interval: 100ms")).unwrap();
    assert_eq!(spec.rules[0].interval, Duration::from_millis(100));
    assert!(warnings[0].message.contains("under 1s"), "{warnings:?}");
    let (_, warnings) = load(&BASE.replace("interval: 15s", "interval: 1s")).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn a_trailing_document_separator_is_accepted_and_a_second_document_refused_in_words() {
    let (spec, _) = load(&format!("{BASE}---\n")).expect("a trailing `---`");
    assert_eq!(spec.rules.len(), 1);
    let (spec, _) = load(&format!("---\n{BASE}---\n# nothing more\n")).expect("both ends");
    assert_eq!(spec.rules.len(), 1);
    let e = load(&format!("{BASE}---\n{BASE}")).unwrap_err();
    let d = e.errors().next().unwrap();
    assert!(
        d.message.contains("2 YAML documents") && d.message.contains("a file of its own"),
        "{}",
        d.message
    );
    assert!(!d.message.contains("from_str"), "{}", d.message);
    assert_eq!(d.pos.unwrap().line, 12, "{e}");
}

#[test]
fn a_syntax_error_in_a_second_document_is_said_in_words_where_it_is() {
    // The single-document parser stops at the `---` with library advice; the error
    // is the one in the second document, at its line.
    for (second, line) in [("b: [\n", 13), ("b: *nowhere\n", 12)] {
        let e = load(&format!("{BASE}---\n{second}")).unwrap_err();
        let d = e.errors().next().unwrap();
        for jargon in ["from_str", "multiple YAML documents"] {
            assert!(!d.message.contains(jargon), "{second:?}: {}", d.message);
        }
        assert!(d.pos.unwrap().line >= line - 1, "{second:?}: {e}");
    }
}

/// A document nested deeper than `MAX_DEPTH` is refused with a sentence and a position,
/// before any recursion can exhaust a thread's stack (a fuzzed `{{{…` file overflowed
/// 2 MiB in a debug build under the parser's own limit of 64).
#[test]
fn nesting_deeper_than_the_limit_is_refused_in_words() {
    let nested = |n: usize| format!("watch:\n  duration: {}1m{}\n", "[".repeat(n), "]".repeat(n));
    let limit = crate::core::yaml::MAX_DEPTH;
    let err = load(&nested(limit + 1)).unwrap_err();
    let first = err.errors().next().unwrap();
    assert!(
        first
            .message
            .contains(&format!("nested more than {limit} levels deep")),
        "{err}"
    );
    assert_eq!(first.pos.map(|p| p.line), Some(2), "{err}");
    let err = load(&nested(limit - 3)).unwrap_err();
    assert!(
        err.errors()
            .all(|d| !d.message.contains("nested more than")),
        "{err}"
    );
}

#[test]
fn step_and_lag_load_with_their_defaults_and_a_step_under_a_second_is_refused() {
    let (spec, _) = load(BASE).unwrap();
    assert_eq!((spec.step, spec.lag), (None, defaults::LAG));
    let r = &spec.rules[0];
    assert_eq!(spec.step_for(r, None), defaults::STEP);
    assert_eq!(spec.step_for(r, Some(Duration::from_secs(60))), r.interval);
    assert_eq!(
        spec.step_for(r, Some(Duration::from_secs(5))),
        Duration::from_secs(5)
    );
    let text = BASE.replace(
        "  interval: 15s\n",
        "  interval: 15s\n  step: 5s\n  lag: 2s\n",
    );
    let (spec, _) = load(&text).unwrap();
    assert_eq!(
        (spec.step, spec.lag),
        (Some(Duration::from_secs(5)), Duration::from_secs(2))
    );
    assert_eq!(
        spec.step_for(&spec.rules[0], Some(Duration::from_secs(1))),
        Duration::from_secs(5)
    );
    let text = BASE.replace("  interval: 15s\n", "  interval: 15s\n  step: 200ms\n");
    assert_eq!(errors(&text), ["watch.step (200ms) is shorter than 1s"]);
}
