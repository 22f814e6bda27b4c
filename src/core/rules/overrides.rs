//! `replay --judge` overrides: `RULE={KEY: VALUE, ...}` rewrites keys of one rule in
//! the rule file's text, which then goes through the same loader as the file, so an
//! override is checked exactly as the file itself would be. Pure: text in, text out.

/// Applies `--judge` overrides to a rule file's text; the new text out.
pub fn apply_judges(text: &str, judges: &[String]) -> Result<String, String> {
    use serde_json::Value;
    let mut doc: Value = serde_saphyr::from_str(text).map_err(|e| format!("the rule file: {e}"))?;
    for j in judges {
        let (name, keys) = j.split_once('=').ok_or_else(|| {
            format!(
                "{j:?}: write RULE={{KEY: VALUE, ...}}, e.g. 'error-ratio={{breaches: 3 of 5}}'"
            )
        })?;
        let keys: Value =
            serde_saphyr::from_str(keys).map_err(|e| format!("{j:?}: not a YAML mapping: {e}"))?;
        let Value::Object(keys) = keys else {
            return Err(format!(
                "{j:?}: the overrides must be a mapping such as {{breaches: 3 of 5}}"
            ));
        };
        let rules = doc
            .get_mut("rules")
            .and_then(Value::as_array_mut)
            .ok_or("the rule file has no list of `rules`")?;
        let names: Vec<String> = rules
            .iter()
            .filter_map(|r| r.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        let rule = rules
            .iter_mut()
            .find(|r| r.get("name").and_then(Value::as_str) == Some(name.trim()))
            .and_then(Value::as_object_mut)
            .ok_or_else(|| {
                format!(
                    "no rule named {:?} (rules: {})",
                    name.trim(),
                    names.join(", ")
                )
            })?;
        for (k, v) in keys {
            // Setting one of `for`/`breaches` replaces the other; removing one (null)
            // leaves the other alone, in whatever order the keys came.
            match k.as_str() {
                "breaches" if !v.is_null() => {
                    rule.remove("for");
                }
                "for" if !v.is_null() => {
                    rule.remove("breaches");
                }
                _ => {}
            }
            if v.is_null() {
                rule.remove(&k);
            } else {
                rule.insert(k, v);
            }
        }
    }
    serde_saphyr::to_string(&doc).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rules::{LoadOptions, WatchSpec};
    use std::time::Duration;

    const FILE: &str = "watch:\n  duration: 1m\n  interval: 5s\nrollback:\n  command: [\"true\"]\nrules:\n  - name: r\n    query: up\n    above: 1\n    for: 1m\n  - name: other\n    query: up\n    below: 1\n    no_data: ok\n    for: 0s\n";

    fn load(text: &str) -> WatchSpec {
        crate::core::rules::load_str("t.yaml", text, &LoadOptions::default())
            .unwrap()
            .0
    }

    #[test]
    fn judge_overrides_go_through_the_loader() {
        let text = apply_judges(FILE, &["r={breaches: 3 of 5}".to_string()]).unwrap();
        let spec = load(&text);
        let r = &spec.rules[0];
        assert_eq!(
            r.judging.breaches,
            Some(crate::core::eval::Breaches { m: 3, n: 5 })
        );
        assert_eq!(r.for_, Duration::ZERO, "breaches replaced for");
        assert_eq!(
            spec.rules[1],
            load(FILE).rules[1],
            "the other rule is untouched"
        );
        let text = apply_judges(
            FILE,
            &["r={baseline: {offset: 1w}, above_baseline: 50%, above: null, for: 0s}".to_string()],
        )
        .unwrap();
        let r = &load(&text).rules[0];
        assert_eq!(r.threshold.above, None);
        assert_eq!(r.judging.baseline.unwrap().above_pct, Some(50.0));
        for (bad, why) in [
            ("nope={for: 0s}", "no rule named \"nope\" (rules: r, other)"),
            ("r", "write RULE="),
            ("r=[1]", "must be a mapping"),
        ] {
            let e = apply_judges(FILE, &[bad.to_string()]).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        // A bad value is the loader's error, as for the file itself.
        let text = apply_judges(FILE, &["r={breaches: 6 of 5}".to_string()]).unwrap();
        let e = crate::core::rules::load_str("t.yaml", &text, &LoadOptions::default()).unwrap_err();
        assert!(e.to_string().contains("M > N"), "{e}");
    }

    #[test]
    fn removing_for_keeps_the_breaches_set_beside_it_in_either_order() {
        for judge in [
            "r={breaches: 3 of 5, for: null}",
            "r={for: null, breaches: 3 of 5}",
        ] {
            let spec = load(&apply_judges(FILE, &[judge.to_string()]).unwrap());
            assert_eq!(
                spec.rules[0].judging.breaches,
                Some(crate::core::eval::Breaches { m: 3, n: 5 }),
                "{judge}"
            );
        }
    }
}
