//! The notation against promtool's grammar, item by item, and a property: no string
//! panics, and every error names a token of the string.

use super::*;
use proptest::prelude::*;

fn v(x: f64) -> Point {
    Point::Value(x)
}

#[test]
fn every_form_expands_as_promtool_does() {
    use Point::{Missing as M, Stale as S};
    let cases: Vec<(&str, Vec<Point>)> = vec![
        ("", vec![]),
        ("1", vec![v(1.0)]),
        ("1 2 3", vec![v(1.0), v(2.0), v(3.0)]),
        ("0x3", vec![v(0.0); 4]),
        ("1+1x3", vec![v(1.0), v(2.0), v(3.0), v(4.0)]),
        ("10-2x2", vec![v(10.0), v(8.0), v(6.0)]),
        ("-1+0.5x2", vec![v(-1.0), v(-0.5), v(0.0)]),
        ("_", vec![M]),
        ("_x3", vec![M, M, M]),
        ("1 _x2 2", vec![v(1.0), M, M, v(2.0)]),
        ("stale", vec![S]),
        ("stalex2", vec![S, S, S]),
        ("1e3", vec![v(1000.0)]),
        ("1.5e-1x1", vec![v(0.15), v(0.15)]),
        ("2E+2+1e2x1", vec![v(200.0), v(300.0)]),
        (".5 1.", vec![v(0.5), v(1.0)]),
        ("+3", vec![v(3.0)]),
        (
            "Inf -inf +INF",
            vec![v(f64::INFINITY), v(f64::NEG_INFINITY), v(f64::INFINITY)],
        ),
        ("  1\t\n2  ", vec![v(1.0), v(2.0)]),
        ("0x20 1+1x1", {
            let mut p = vec![v(0.0); 21];
            p.extend([v(1.0), v(2.0)]);
            p
        }),
    ];
    for (text, want) in cases {
        assert_eq!(parse(text).unwrap(), want, "{text:?}");
    }
    let nan = parse("NaN nanx1").unwrap();
    assert_eq!(nan.len(), 3);
    assert!(nan
        .iter()
        .all(|p| matches!(p, Point::Value(x) if x.is_nan())));
}

#[test]
fn steps_accumulate_as_promtool_adds_them() {
    // promtool adds the step to the running value (`$1 += $2`), not `a + i*b`.
    let mut want = Vec::new();
    let mut x = 0.1;
    for _ in 0..=10 {
        want.push(v(x));
        x += 0.1;
    }
    assert_eq!(parse("0.1+0.1x10").unwrap(), want);
}

#[test]
fn errors_name_the_offending_item() {
    let cases = [
        ("1 2 abc", "abc", 4),
        ("1+1", "1+1", 0),
        ("0x", "0x", 0),
        ("0x1a", "0x1a", 0),
        ("_y", "_y", 0),
        ("_x", "_x", 0),
        ("1+x3", "1+x3", 0),
        ("stale+1x2", "stale+1x2", 0),
        ("1 0xff", "0xff", 2),
        ("1x99999999999999999999999", "1x99999999999999999999999", 0),
        ("0x1000000000", "0x1000000000", 0),
        ("é", "é", 0),
        ("𝔍", "𝔍", 0),
        ("1 infé", "infé", 2),
        ("1 1,2", "1,2", 2),
    ];
    for (text, token, at) in cases {
        let e = parse(text).unwrap_err();
        assert_eq!((e.token.as_str(), e.at), (token, at), "{text:?}: {e}");
        assert!(e.to_string().contains(&format!("`{token}`")), "{e}");
    }
}

proptest! {
    #[test]
    fn never_panics_and_errors_name_a_token(s in "\\PC{0,40}") {
        if let Err(e) = parse(&s) {
            prop_assert!(!e.token.is_empty());
            prop_assert!(s.split_whitespace().any(|t| t == e.token), "{:?} not in {:?}", e.token, s);
            prop_assert!(e.to_string().contains(&e.token));
        }
    }

    #[test]
    fn notation_like_strings_never_panic(s in "[0-9_x+\\-.eEinfaNstl ]{0,30}") {
        if let Err(e) = parse(&s) {
            prop_assert!(s.split_whitespace().any(|t| t == e.token));
        }
    }

    #[test]
    fn a_step_expands_to_n_plus_one(a in -1e6f64..1e6, b in -1e3f64..1e3, n in 0u64..200) {
        let p = parse(&format!("{a}{b:+}x{n}")).unwrap();
        prop_assert_eq!(p.len() as u64, n + 1);
        prop_assert_eq!(p[0], Point::Value(a));
    }
}
