use super::Labels;
use std::collections::{BTreeMap, HashSet};
use std::hash::BuildHasher;

/// The map `Labels` replaced, as the reference for every property below.
type Map = BTreeMap<String, String>;

fn map(pairs: &[(&str, &str)]) -> Map {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn set(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().copied().collect()
}

/// Label sets chosen to meet every edge: empty, a name that is a prefix of another,
/// equal text split differently between names and values, a repeated name, names out
/// of order, the empty name and value, NUL and non-ASCII text.
fn cases() -> Vec<Vec<(&'static str, &'static str)>> {
    vec![
        vec![],
        vec![("a", "")],
        vec![("", "a")],
        vec![("a", "b")],
        vec![("ab", "")],
        vec![("a", "b"), ("c", "d")],
        vec![("a", "bc"), ("d", "")],
        vec![("a", "b"), ("cd", "")],
        vec![("c", "d"), ("a", "b")],
        vec![("a", "1"), ("a", "2")],
        vec![("a", "2"), ("b", "x"), ("a", "1")],
        vec![("a", "b"), ("a", "b")],
        vec![("pod", "p\u{0}1"), ("job", "é")],
        vec![("pod", "p"), ("pod", "p"), ("job", "")],
        vec![("z", "1"), ("y", "2"), ("x", "3"), ("w", "4")],
    ]
}

#[test]
fn a_set_holds_what_the_map_held_with_the_last_of_a_repeated_name() {
    for c in cases() {
        let (l, m) = (set(&c), map(&c));
        let pairs: Vec<(String, String)> = l
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let want: Vec<(String, String)> = m.clone().into_iter().collect();
        assert_eq!(pairs, want, "{c:?}");
        assert_eq!(l.len(), m.len(), "{c:?}");
        assert_eq!(l.is_empty(), m.is_empty(), "{c:?}");
        let back: Vec<_> = l.iter().rev().map(|(k, _)| k.to_string()).collect();
        let want_back: Vec<_> = m.keys().rev().cloned().collect();
        assert_eq!(back, want_back, "{c:?}");
        for name in ["", "a", "ab", "b", "pod", "job", "z", "w", "q"] {
            assert_eq!(l.get(name), m.get(name).map(String::as_str), "{c:?} {name}");
            assert_eq!(l.contains_key(name), m.contains_key(name));
        }
    }
}

#[test]
fn sets_compare_order_and_hash_as_the_maps_did() {
    let all = cases();
    for a in &all {
        for b in &all {
            let (la, lb) = (set(a), set(b));
            let (ma, mb) = (map(a), map(b));
            assert_eq!(la == lb, ma == mb, "{a:?} {b:?}");
            assert_eq!(la.cmp(&lb), ma.cmp(&mb), "{a:?} {b:?}");
            if la == lb {
                let h = |l: &Labels| foldhash::fast::FixedState::with_seed(7).hash_one(l);
                assert_eq!(h(&la), h(&lb), "{a:?} {b:?}");
            }
        }
    }
    // Equal text split differently is not the same set.
    assert_ne!(set(&[("a", "bc")]), set(&[("ab", "c")]));
    assert_ne!(
        set(&[("a", "b"), ("c", "d")]),
        set(&[("a", "bc"), ("d", "")])
    );
    // Distinct sets land in distinct places of a hash set.
    let distinct: HashSet<Labels> = all.iter().map(|c| set(c)).collect();
    let want: HashSet<Map> = all.iter().map(|c| map(c)).collect();
    assert_eq!(distinct.len(), want.len());
}

#[test]
fn a_clone_is_the_same_set_and_the_empty_set_holds_nothing() {
    let l = set(&[("pod", "a"), ("job", "b")]);
    let c = l.clone();
    assert_eq!(l, c);
    assert!(std::ptr::eq(
        l.0.as_deref().unwrap(),
        c.0.as_deref().unwrap()
    ));
    assert!(Labels::new().0.is_none());
    assert!(set(&[]).0.is_none());
    assert_eq!(Labels::default(), Labels::new());
    // A pointer and a length: the set itself is in its one block.
    assert_eq!(
        std::mem::size_of::<Labels>(),
        2 * std::mem::size_of::<usize>()
    );
}

#[test]
fn a_set_reads_writes_and_prints_as_the_map_did() {
    for c in cases() {
        let (l, m) = (set(&c), map(&c));
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            serde_json::to_string(&m).unwrap()
        );
        assert_eq!(format!("{l:?}"), format!("{m:?}"));
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Labels>(&text).unwrap(), l);
    }
    // Escapes, a repeated name, names out of order, as the map read them.
    for text in [
        r#"{"b":"1","a":"2","b":"3"}"#,
        r#"{"a\"b":"\u00e9\n","":""}"#,
        r#"{}"#,
    ] {
        let l: Labels = serde_json::from_str(text).unwrap();
        let m: Map = serde_json::from_str(text).unwrap();
        assert_eq!(l, m.iter().collect::<Labels>(), "{text}");
        assert_eq!(format!("{l:?}"), format!("{m:?}"), "{text}");
    }
    // What is not a map of strings fails with the map's words.
    for text in [
        r#"[]"#,
        r#"{"a":1}"#,
        r#"{"a":null}"#,
        r#"{"a":"b""#,
        r#""x""#,
        "null",
    ] {
        let l = serde_json::from_str::<Labels>(text)
            .unwrap_err()
            .to_string();
        let m = serde_json::from_str::<Map>(text).unwrap_err().to_string();
        assert_eq!(l, m, "{text}");
    }
}

proptest::proptest! {
    /// Any pairs, in any order, repeated names too, read from JSON or collected:
    /// the same set as the map's, compared, ordered and written the same.
    #[test]
    fn any_pairs_make_the_maps_set(
        a in proptest::collection::vec(("[a-c_]{0,3}", "[a-c\\x00é\"]{0,3}"), 0..7),
        b in proptest::collection::vec(("[a-c_]{0,3}", "[a-c\\x00é\"]{0,3}"), 0..7),
    ) {
        let json = |pairs: &[(String, String)]| {
            let body: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}:{}", serde_json::json!(k), serde_json::json!(v)))
                .collect();
            format!("{{{}}}", body.join(","))
        };
        let (ma, mb): (Map, Map) = (a.iter().cloned().collect(), b.iter().cloned().collect());
        let la: Labels = serde_json::from_str(&json(&a)).unwrap();
        let lb: Labels = a.iter().cloned().collect();
        proptest::prop_assert_eq!(&la, &lb);
        let ma_read: Map = serde_json::from_str(&json(&a)).unwrap();
        proptest::prop_assert_eq!(&ma_read, &ma);
        proptest::prop_assert_eq!(serde_json::to_string(&la).unwrap(), serde_json::to_string(&ma).unwrap());
        let other: Labels = serde_json::from_str(&json(&b)).unwrap();
        proptest::prop_assert_eq!(la.cmp(&other), ma.cmp(&mb));
        proptest::prop_assert_eq!(la == other, ma == mb);
        proptest::prop_assert_eq!(la.len(), ma.len());
        for (k, v) in &ma {
            proptest::prop_assert_eq!(la.get(k), Some(v.as_str()));
        }
    }
}
