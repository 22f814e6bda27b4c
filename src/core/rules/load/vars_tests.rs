//! What a caller may give a variable (`--set`, the API's `vars`): no control
//! characters, a bounded length, the file's `pattern`, and no `-` at the start of a
//! command argument unless the file says `allow_option: true`.

use super::*;

const RULES: &str = "watch:\n  duration: 10m\n  interval: 15s\nrollback:\n  command: [\"kubectl\", \"rollout\", \"undo\", \"-n\", \"${namespace}\", \"deployment/${service}\"]\nrules:\n  - name: r\n    query: up{namespace=\"${namespace}\"}\n    above: 1\n    for: 1m\n";

fn file(vars: &str) -> String {
    format!("vars:\n{vars}{RULES}")
}

fn with(text: &str, sets: &[(&str, &str)], check: bool) -> Result<Loaded, LoadError> {
    let sets: Vec<(String, String)> = sets
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    load_str(
        "t.yaml",
        text,
        &LoadOptions {
            sets: &sets,
            check,
            outside: None,
        },
    )
}

fn err(text: &str, sets: &[(&str, &str)]) -> String {
    with(text, sets, false).unwrap_err().to_string()
}

const PLAIN: &str = "  namespace: prod\n  service: checkout\n";

#[test]
fn control_characters_are_refused_naming_the_variable() {
    for bad in ["a\0b", "a\nb", "a\tb", "a\x1bb", "a\x7fb", "a\u{85}b"] {
        let e = err(&file(PLAIN), &[("service", bad)]);
        assert!(
            e.contains("variable `service`") && e.contains("control character"),
            "{bad:?}: {e}"
        );
        assert!(!e.contains('\0'), "the value is shown escaped: {e:?}");
    }
    // In a default too, with its position.
    let e = err(&file("  namespace: prod\n  service: \"a\\tb\"\n"), &[]);
    assert!(e.contains("t.yaml:3:12"), "{e}");
    assert!(e.contains("variable `service`"), "{e}");
    // Ordinary text (spaces, unicode) is fine.
    assert!(with(&file(PLAIN), &[("service", "check out é")], false).is_ok());
}

#[test]
fn overlong_values_are_refused() {
    let long = "x".repeat(crate::core::rules::MAX_VAR_LEN + 1);
    let e = err(&file(PLAIN), &[("service", &long)]);
    assert!(
        e.contains("variable `service`") && e.contains("1025 bytes") && e.contains("1024"),
        "{e}"
    );
    assert!(!e.contains(&long), "the value is not echoed whole");
    let ok = "x".repeat(crate::core::rules::MAX_VAR_LEN);
    assert!(with(&file(PLAIN), &[("service", &ok)], false).is_ok());
}

const PATTERNED: &str = "  namespace: {default: prod, pattern: \"^[a-z0-9-]+$\", description: the namespace}\n  service: checkout\n";

#[test]
fn a_pattern_restricts_given_values_and_defaults() {
    let (spec, _) = with(&file(PATTERNED), &[("namespace", "staging-2")], false).unwrap();
    assert_eq!(spec.vars["namespace"], "staging-2");
    let (spec, _) = with(&file(PATTERNED), &[], false).unwrap();
    assert_eq!(spec.vars["namespace"], "prod", "the map form's default");

    let e = err(&file(PATTERNED), &[("namespace", "prod\"} or vector(1) #")]);
    assert!(e.contains("variable `namespace`"), "{e}");
    assert!(
        e.contains(r#""prod\"} or vector(1) #""#),
        "names the value: {e}"
    );
    assert!(e.contains("`^[a-z0-9-]+$`"), "names the pattern: {e}");
    assert!(e.contains("t.yaml:2:39"), "points at the pattern: {e}");

    let bad_default = file("  namespace: {default: Prod, pattern: \"^[a-z]+$\"}\n  service: x\n");
    let e = err(&bad_default, &[]);
    assert!(
        e.contains("default") && e.contains("\"Prod\"") && e.contains("`^[a-z]+$`"),
        "{e}"
    );
    // A value given with --set replaces the bad default, and is what is checked.
    assert!(with(&bad_default, &[("namespace", "prod")], false).is_ok());
}

#[test]
fn an_unanchored_pattern_is_a_warning() {
    let (_, warnings) = with(
        &file("  namespace: {default: prod, pattern: \"[a-z]+\"}\n  service: x\n"),
        &[],
        false,
    )
    .unwrap();
    assert!(
        warnings.iter().any(|w| w.message.contains("not anchored")),
        "{warnings:?}"
    );
}

#[test]
fn a_bad_pattern_is_refused_with_its_position() {
    let e = err(
        &file("  namespace: {default: prod, pattern: \"^[a-z+$\"}\n  service: x\n"),
        &[],
    );
    assert!(e.contains("t.yaml:2:39"), "{e}");
    assert!(
        e.contains("pattern of variable `namespace` is not a valid regex"),
        "{e}"
    );
}

#[test]
fn the_map_form_reports_unknown_keys_and_wrong_types() {
    let e = err(
        &file("  namespace: {default: prod, patern: \"^x$\"}\n  service: x\n"),
        &[],
    );
    assert!(
        e.contains("unknown key `patern`") && e.contains("did you mean `pattern`?"),
        "{e}"
    );
    let e = err(
        &file("  namespace: {default: prod, allow_option: yes}\n  service: x\n"),
        &[],
    );
    assert!(
        e.contains("allow_option") && e.contains("true or false"),
        "{e}"
    );
    let e = err(
        &file("  namespace: {default: [a], pattern: [b]}\n  service: x\n"),
        &[],
    );
    assert!(e.contains("default of variable `namespace`"), "{e}");
    assert!(e.contains("pattern of variable `namespace`"), "{e}");
    // No default and no --set: the same error as the plain form.
    let e = err(
        &file("  namespace: {pattern: \"^[a-z]+$\"}\n  service: x\n"),
        &[],
    );
    assert!(e.contains("variable `namespace` has no default"), "{e}");
    // A typo'd --set still gets its did-you-mean.
    let e = err(&file(PATTERNED), &[("namespcae", "x")]);
    assert!(e.contains("did you mean `namespace`?"), "{e}");
}

#[test]
fn a_value_starting_with_a_dash_never_becomes_an_option_of_a_command() {
    let e = err(&file(PLAIN), &[("namespace", "--all-namespaces")]);
    assert!(e.contains("${namespace}"), "{e}");
    assert!(e.contains(r#""--all-namespaces""#), "{e}");
    assert!(
        e.contains("allow_option: true"),
        "the hint names the key: {e}"
    );
    assert!(e.contains("t.yaml:8:50"), "points at the command: {e}");
    // Also when an empty variable comes first.
    let text = format!(
        "vars:\n  empty: \"\"\n  namespace: prod\n  service: x\n{}",
        RULES.replace("\"${namespace}\"", "\"${empty}${namespace}\"")
    );
    let e = err(&text, &[("namespace", "-A")]);
    assert!(e.contains("${namespace}"), "{e}");
    // Inside an argument (`--namespace=${ns}`, `deployment/${service}`) it is harmless.
    assert!(with(&file(PLAIN), &[("service", "-x")], false).is_ok());
    // The file can allow it.
    let allowed = file("  namespace: {default: prod, allow_option: true}\n  service: x\n");
    let (spec, _) = with(&allowed, &[("namespace", "--all-namespaces")], false).unwrap();
    assert_eq!(spec.rollback.unwrap().argv[4], "--all-namespaces");
    // A dash in the query is not a command option.
    let query_only = format!(
        "vars:\n  namespace: prod\n{}",
        RULES.replace(
            "\"-n\", \"${namespace}\", \"deployment/${service}\"",
            "\"x\""
        )
    );
    assert!(with(&query_only, &[("namespace", "-x")], false).is_ok());
}

#[test]
fn check_mode_stand_ins_are_not_judged_against_the_pattern() {
    let text = file("  namespace: {pattern: \"^[0-9]+$\"}\n  service: x\n");
    assert!(with(&text, &[], true).is_ok());
    // A given value still is.
    assert!(with(&text, &[("namespace", "abc")], true).is_err());
}
