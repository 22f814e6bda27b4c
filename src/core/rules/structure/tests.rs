//! The structural guarantee, by example and by property: a value is refused, or it
//! ends up, exactly, as the one literal its placeholder stands for.

use super::*;
use promql_parser::parser::{Expr, StringLiteral};
use proptest::prelude::*;

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Renders `template` with `pairs`; the error's message on refusal.
fn render(template: &str, pairs: &[(&str, &str)]) -> Result<String, String> {
    render_free(template, pairs, &[])
}

fn render_free(template: &str, pairs: &[(&str, &str)], free: &[&str]) -> Result<String, String> {
    let pieces = template::parse(template).unwrap();
    let free = free.iter().map(|s| s.to_string()).collect();
    render_query(&pieces, &vars(pairs), &free).map_err(|e| match e {
        QueryError::Placeholder(e) => e.message,
        QueryError::Template(m) => format!("template: {m}"),
    })
}

fn tree(q: &str) -> Expr {
    promql_parser::parser::parse(q).unwrap_or_else(|e| panic!("{q:?} does not parse: {e}"))
}

/// The selector's matcher `name`'s value.
fn matcher_value(e: &Expr, name: &str) -> String {
    let vs = match e {
        Expr::VectorSelector(v) => v,
        Expr::MatrixSelector(m) => &m.vs,
        Expr::Aggregate(a) => return matcher_value(&a.expr, name),
        Expr::Call(c) => return matcher_value(&c.args.args[0], name),
        other => panic!("no selector in {other:?}"),
    };
    vs.matchers
        .matchers
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no matcher {name} in {vs:?}"))
        .value
        .clone()
}

const EXPLOIT: &str = "x\"}[1m])) or vector(1) #";
const ISSUE_QUERY: &str =
    "# don't page on canaries\nsum(rate(http_requests_total{service=\"${service}\"}[1m]))\n";

#[test]
fn issue_10_the_exploit_stays_one_label_value() {
    let q = render(ISSUE_QUERY, &[("service", EXPLOIT)]).unwrap();
    assert_eq!(
        q,
        "# don't page on canaries\nsum(rate(http_requests_total{service=\"x\\\"}[1m])) or vector(1) #\"}[1m]))\n"
    );
    let t = tree(&q);
    // The template's tree, with the value as the label value: no `or vector(1)`.
    let mut expected = tree(&ISSUE_QUERY.replace("${service}", "ok"));
    let Expr::Aggregate(a) = &mut expected else {
        panic!()
    };
    let Expr::Call(c) = a.expr.as_mut() else {
        panic!()
    };
    let Expr::MatrixSelector(m) = c.args.args[0].as_mut() else {
        panic!()
    };
    m.vs.matchers.matchers[0].value = EXPLOIT.into();
    assert_eq!(t, expected);
    assert_eq!(matcher_value(&t, "service"), EXPLOIT);
}

#[test]
fn issue_10_a_comment_with_an_apostrophe_cannot_open_code_context_to_a_value() {
    let t = "# it's the error ratio\nsum(rate(x{code=~\"5..\"}[${window}]))";
    assert_eq!(
        render(t, &[("window", "5m")]).unwrap(),
        "# it's the error ratio\nsum(rate(x{code=~\"5..\"}[5m]))"
    );
    let err = render(t, &[("window", "1m])) or vector(1) #")]).unwrap_err();
    assert!(err.contains("`window`"), "{err}");
    assert!(err.contains("outside a string literal"), "{err}");
}

#[test]
fn every_quote_holds_values_with_every_quote_backslashes_and_line_breaks() {
    let nasty = [
        "\"",
        "'",
        "`",
        "\\",
        "\\\"",
        "a\\",
        "\n",
        "\r\n",
        "#",
        "}",
        ")",
        "]",
        "x\"} or vector(1) #",
        "x'} or vector(1) #",
        "a\\\"} or up{b=\"",
        "\t\u{1}\u{7f}\u{85}",
        "ünï😀",
        "${x}",
        "",
    ];
    for v in nasty {
        // The comment's apostrophe once put the escaper in the wrong quote (issue 10).
        for t in ["up{a=\"${v}\"}", "up{a='${v}'}", "# don't\nup{a=\"${v}\"}"] {
            let q = render(t, &[("v", v)]).unwrap_or_else(|e| panic!("{t} {v:?}: {e}"));
            assert_eq!(matcher_value(&tree(&q), "a"), v, "{t} with {v:?}: {q}");
        }
        let q = render(
            "label_replace(up, \"d\", '${v}', \"s\", \"(.*)\")",
            &[("v", v)],
        )
        .unwrap();
        let Expr::Call(c) = tree(&q) else { panic!() };
        assert_eq!(
            *c.args.args[2],
            Expr::StringLiteral(StringLiteral { val: v.into() }),
            "{q}"
        );
        // In a raw string what cannot be kept exactly is refused.
        match render("up{a=`${v}`}", &[("v", v)]) {
            Ok(q) => assert_eq!(matcher_value(&tree(&q), "a"), v, "{q}"),
            Err(e) => assert!(
                v.contains(['`', '\\']) || v.chars().any(char::is_control),
                "{v:?}: {e}"
            ),
        }
    }
}

#[test]
fn escape_sequences_already_in_the_template_are_kept() {
    let q = render(r#"up{a="q\"${v}\n"}"#, &[("v", "\"}")]).unwrap();
    assert_eq!(q, r#"up{a="q\"\"}\n"}"#);
    assert_eq!(matcher_value(&tree(&q), "a"), "q\"\"}\n");
    let err = render(r#"up{a="q\${v}"}"#, &[("v", "n")]).unwrap_err();
    assert!(err.contains("follows a backslash"), "{err}");
}

#[test]
fn a_placeholder_in_a_comment_cannot_end_the_comment() {
    let t = "up # for ${service}\n";
    assert_eq!(
        render(t, &[("service", "it's \"x\" {")]).unwrap(),
        "up # for it's \"x\" {\n"
    );
    for v in ["x\nor vector(1)", "x\ror vector(1)", "x\n"] {
        let err = render(t, &[("service", v)]).unwrap_err();
        assert!(err.contains("comment"), "{v:?}: {err}");
    }
}

#[test]
fn keywords_are_never_values_outside_strings() {
    for kw in [
        "or",
        "AND",
        "unless",
        "by",
        "without",
        "offset",
        "bool",
        "on",
        "sum",
        "group_left",
    ] {
        for t in ["sum by (${v}) (up)", "up > ${v}", "${v}"] {
            let err = render(t, &[("v", kw)]).unwrap_err();
            assert!(err.contains("keyword"), "{t} {kw}: {err}");
        }
    }
    // Before the structural check `by (or)` rendered and parsed.
    assert!(render("sum by (${v}) (up)", &[("v", "job")]).is_ok());
}

#[test]
fn a_value_outside_strings_is_one_number_duration_or_name() {
    let t = "rate(x[${w}]) > ${n}";
    for (w, n, q) in [
        ("5m", "0.5", "rate(x[5m]) > 0.5"),
        ("90", "1e3", "rate(x[90]) > 1e3"),
        ("1h30m", "Inf", "rate(x[1h30m]) > Inf"),
        ("5m", "5m", "rate(x[5m]) > 5m"),
        ("5m", "0x1F", "rate(x[5m]) > 0x1F"),
        ("5m", "up", "rate(x[5m]) > up"),
    ] {
        assert_eq!(render(t, &[("w", w), ("n", n)]).unwrap(), q);
    }
    for (w, n) in [
        ("5m]) or vector(1", "1"),
        ("", "1"),
        ("5m", "-5"),
        ("5m", "1-3"),
        ("5m", "0x1e-3"),
        ("5m", "1 "),
        ("5m", "1#"),
        ("up", "1"),
        ("5m", "a.b"),
        ("1e30", "1"),
        ("5m", "(1)"),
    ] {
        assert!(render(t, &[("w", w), ("n", n)]).is_err(), "{w:?} {n:?}");
    }
    // A sign belongs in the template.
    assert_eq!(render("x > -${n}", &[("n", "5")]).unwrap(), "x > -5");
}

#[test]
fn numbers_too_large_for_a_duration_are_refused_not_a_panic() {
    // promql-parser panics on `x[1e30]` and `x offset NaN`.
    for (t, v) in [
        ("x[${v}]", "1e30"),
        ("x offset ${v}", "NaN"),
        ("x offset ${v}", "Inf"),
        ("x[5m:${v}]", "1e300"),
        ("x @ ${v}", "1e30"),
    ] {
        assert!(render(t, &[("v", v)]).is_err(), "{t} {v}");
    }
    let err = render_free("x[1e30] > ${n}", &[("n", "1")], &[]).unwrap_err();
    assert!(err.starts_with("template:"), "{err}");
}

#[test]
fn a_code_value_that_runs_into_the_text_around_it_is_refused_unless_it_is_a_name() {
    // Part of a name is fine: it is still one name.
    assert_eq!(
        render("http_${kind}_total", &[("kind", "5xx")]).unwrap(),
        "http_5xx_total"
    );
    assert_eq!(
        render("http_${kind}_total", &[("kind", "2")]).unwrap(),
        "http_2_total"
    );
    assert_eq!(
        render("x{${l}=\"a\"}", &[("l", "job")]).unwrap(),
        "x{job=\"a\"}"
    );
    // Numbers and durations must stand alone: `5` + `m` is not the value `5`.
    for (t, v) in [
        ("x[${v}m]", "5"),
        ("x > 1${v}", "5"),
        ("x > ${v}e3", "5"),
        ("x[${v}${v}]", "5m"),
    ] {
        let err = render(t, &[("v", v)]).unwrap_err();
        assert!(!err.is_empty(), "{t}");
    }
    // `${a}${b}` as one name would be one literal for two placeholders.
    let r = render("${a}${b}", &[("a", "5"), ("b", "5")]);
    assert!(r.is_err(), "{r:?}");
}

#[test]
fn a_regex_matcher_takes_the_value_as_a_regex_and_refuses_an_invalid_one() {
    let q = render(r#"up{a=~"${v}.*"}"#, &[("v", "a|b")]).unwrap();
    assert_eq!(q, r#"up{a=~"a|b.*"}"#);
    let Expr::VectorSelector(vs) = tree(&q) else {
        panic!()
    };
    assert_eq!(vs.matchers.matchers[0].value, "a|b.*");
    let q = render(r#"up{a!~"${v}"}"#, &[("v", "\"}")]).unwrap();
    assert_eq!(matcher_value(&tree(&q), "a"), "\"}");
    let err = render(r#"up{a=~"${v}.*"}"#, &[("v", "(")]).unwrap_err();
    assert!(err.contains("regular expression"), "{err}");
}

#[test]
fn nul_is_refused_in_every_context() {
    for t in [
        "up{a=\"${v}\"}",
        "up{a='${v}'}",
        "up{a=`${v}`}",
        "up # ${v}\n",
        "${v}",
    ] {
        assert!(render(t, &[("v", "a\0b")]).is_err(), "{t}");
    }
}

#[test]
fn a_template_that_is_not_promql_whatever_the_values_says_so() {
    let err = render("sum(rate(x[${w}])", &[("w", "5m")]).unwrap_err();
    assert!(err.starts_with("template:"), "{err}");
    // A function name cannot be a placeholder.
    let err = render("${f}(x[5m])", &[("f", "rate")]).unwrap_err();
    assert!(err.starts_with("template:"), "{err}");
}

#[test]
fn check_mode_gives_unset_variables_a_stand_in_that_fits_and_still_checks() {
    let t = "sum(rate(x{s=\"${service}\"}[${window}])) > ${n}";
    assert_eq!(
        render_free(
            t,
            &[("service", "service"), ("window", "window"), ("n", "n")],
            &["service", "window", "n"]
        )
        .unwrap(),
        "sum(rate(x{s=\"service\"}[1])) > n"
    );
    // Still checked: a set value is refused as in `watch`, an unset one cannot make a
    // bad template pass.
    assert!(render_free(
        t,
        &[("service", "s"), ("window", "5m) or (x"), ("n", "n")],
        &["n"]
    )
    .is_err());
    let err = render_free("${f}(x)", &[("f", "f")], &["f"]).unwrap_err();
    assert!(err.starts_with("template:"), "{err}");
}

#[test]
fn the_same_placeholder_twice_is_checked_at_each_place() {
    let t = "sum by (${v}) (x{a=\"${v}\"})";
    assert_eq!(
        render(t, &[("v", "job")]).unwrap(),
        "sum by (job) (x{a=\"job\"})"
    );
    let err = render(t, &[("v", "or")]).unwrap_err();
    assert!(err.contains("keyword"), "{err}");
    let err = render(t, &[("v", "a\"b")]).unwrap_err();
    assert!(err.contains("outside a string literal"), "{err}");
}

/// Characters that matter to PromQL's lexer, and anything else.
fn nasty_string() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        3 => prop::sample::select(vec![
            '"', '\'', '`', '\\', '#', '\n', '\r', '\t', '\0', '{', '}', '(', ')', '[', ']',
            ',', '=', '~', '!', ' ', 'o', 'r', 'x', '0', '5', 'm', '.', 'e', '-', '+', ':',
            '_', '$', 'é', '😀', '\u{85}', '\u{2028}',
        ]),
        1 => any::<char>(),
    ];
    prop::collection::vec(c, 0..16).prop_map(String::from_iter)
}

/// Values for code context: arbitrary, plus numbers, durations, names and keywords.
fn code_value() -> impl Strategy<Value = String> {
    prop_oneof![
        nasty_string(),
        "[0-9]{1,4}(\\.[0-9]{1,3})?",
        "[0-9]{1,3}(ms|s|m|h|d|w|y)",
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,6}",
        prop::sample::select(vec![
            "or", "by", "offset", "bool", "Inf", "NaN", "1e3", "0x1f", "5m"
        ])
        .prop_map(String::from),
        // A literal followed by an attempt to add to the query.
        (
            "[0-9]{1,2}m?|up",
            prop::sample::select(vec![
                " or vector(1)",
                "]) or vector(1) #",
                "])) or vector(1) #",
                " offset 1h",
                " # x",
                "\n or vector(1)",
                " > bool 0",
                "[5m]",
            ]),
        )
            .prop_map(|(a, b)| format!("{a}{b}")),
    ]
}

/// A template with one placeholder `${v}`, and how to find the literal it stands for in
/// a tree of its shape.
struct Case {
    template: &'static str,
    /// The template's tree with `v` as the literal, if `v` can be that literal.
    expected: fn(&str) -> Option<Expr>,
    /// Values besides NUL it may refuse: those it cannot keep exactly.
    refusable: fn(&str) -> bool,
}

fn never(_: &str) -> bool {
    false
}

fn raw_unsafe(v: &str) -> bool {
    v.contains(['`', '\\']) || v.chars().any(char::is_control)
}

fn with_matcher(template: &str, v: &str, regex: bool) -> Option<Expr> {
    let mut e = tree(&template.replace("${v}", "ok"));
    let vs = match &mut e {
        Expr::VectorSelector(vs) => vs,
        _ => unreachable!(),
    };
    let m = &mut vs.matchers.matchers[0];
    let value = m.value.replace("ok", v);
    *m = if regex {
        Matcher::new_matcher(T_EQL_REGEX, m.name.clone(), value).ok()?
    } else {
        Matcher::new(m.op.clone(), &m.name, &value)
    };
    Some(e)
}

const STRING_CASES: &[Case] = &[
    Case {
        template: "up{a=\"${v}\"}",
        expected: |v| with_matcher("up{a=\"${v}\"}", v, false),
        refusable: never,
    },
    Case {
        template: "up{a='${v}'}",
        expected: |v| with_matcher("up{a='${v}'}", v, false),
        refusable: never,
    },
    Case {
        template: "up{a=`${v}`}",
        expected: |v| with_matcher("up{a=`${v}`}", v, false),
        refusable: raw_unsafe,
    },
    Case {
        template: "up{a=~\"x${v}.*\"}",
        expected: |v| with_matcher("up{a=~\"x${v}.*\"}", v, true),
        refusable: |v| with_matcher("up{a=~\"x${v}.*\"}", v, true).is_none(),
    },
    Case {
        template: "# it's ${v}\nup",
        expected: |_| Some(tree("up")),
        refusable: |v| v.chars().any(char::is_control),
    },
    Case {
        template: "# don't page\nup{a=\"${v}\"}",
        expected: |v| with_matcher("# don't page\nup{a=\"${v}\"}", v, false),
        refusable: never,
    },
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// In every string context and in a comment: refused, or exactly the literal.
    #[test]
    fn a_value_is_refused_or_is_exactly_its_literal(v in nasty_string()) {
        for case in STRING_CASES {
            match render(case.template, &[("v", &v)]) {
                Ok(q) => {
                    let got = promql_parser::parser::parse(&q)
                        .unwrap_or_else(|e| panic!("{q:?} accepted but does not parse: {e}"));
                    let expected = (case.expected)(&v)
                        .unwrap_or_else(|| panic!("{:?} accepted {v:?}, which cannot be its literal", case.template));
                    prop_assert_eq!(got, expected, "{} with {:?} rendered {:?}", case.template, v, q);
                }
                Err(e) => {
                    // Only what cannot be kept exactly is refused.
                    prop_assert!(
                        v.contains('\0') || (case.refusable)(&v),
                        "{} refused {:?}: {}", case.template, v, e
                    );
                }
            }
        }
    }

    /// Outside strings: refused, or one number, duration or name, as PromQL reads it.
    #[test]
    fn a_code_value_is_refused_or_is_exactly_one_literal(v in code_value(), w in code_value()) {
        let t = "# it's a ratio\nsum by (job) (rate(x[${w}])) > ${v}";
        if let Ok(q) = render(t, &[("v", &v), ("w", &w)]) {
            let got = tree(&q);
            let Expr::Binary(b) = &got else { panic!("{q}: {got:?}") };
            match b.rhs.as_ref() {
                Expr::NumberLiteral(n) => {
                    let alone = tree(&v);
                    prop_assert_eq!(Expr::NumberLiteral(n.clone()), alone, "{}", q);
                }
                Expr::VectorSelector(s) => {
                    prop_assert_eq!(s.name.as_deref(), Some(v.as_str()), "{}", q);
                    prop_assert!(s.matchers.matchers.is_empty() && s.offset.is_none() && s.at.is_none());
                }
                other => prop_assert!(false, "{} made {:?}", q, other),
            }
            let Expr::Aggregate(a) = b.lhs.as_ref() else { panic!("{q}") };
            let Expr::Call(c) = a.expr.as_ref() else { panic!("{q}") };
            let Expr::MatrixSelector(m) = c.args.args[0].as_ref() else { panic!("{q}") };
            let Expr::MatrixSelector(alone) = tree(&format!("x[{w}]")) else { panic!("{q}") };
            prop_assert_eq!(m, &alone, "{}", q);
            // Nothing else moved.
            let same = tree(&format!("sum by (job) (rate(x[{w}])) > 1"));
            let Expr::Binary(sb) = same else { panic!() };
            prop_assert_eq!(&b.lhs, &sb.lhs);
            prop_assert_eq!(&b.op, &sb.op);
            prop_assert_eq!(&b.modifier, &sb.modifier);
        }
    }
}

/// `parse` keeps its answers by text: the same text answers the same (errors and the
/// parser's panics included), the second time from what it kept, and more texts than
/// it keeps never make it answer wrongly.
#[test]
fn a_kept_parse_answers_as_a_fresh_one() {
    for text in ["sum(rate(x{code=~\"5..\"}[5m]))", "x[1e30]", "sum(", "up"] {
        let fresh = parse_anew(text);
        assert_eq!(parse(text), fresh, "{text}");
        assert_eq!(parse(text), fresh, "{text}, kept");
    }
    for i in 0..(PARSED_MAX + 10) {
        let text = format!("x{i} > {i}");
        assert_eq!(parse(&text), parse_anew(&text));
    }
    assert_eq!(parse("sum("), parse_anew("sum("));
}
