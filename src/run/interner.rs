//! Equal values held once for every watch that holds them (issue 21).
//!
//! Why: at 100,000 watches, what each watch copied from its rule file cost more
//! than its own state. A rule's judging `Params` is 472 bytes (the judges' settings,
//! nearly all unused by a given rule): 2.3 KB a watch of five rules. The page's
//! record of a watch kept its rules' names, queries, thresholds and graph links, and
//! its vars: about 3 KB more. Watches of one rule file and service hold equal ones;
//! each now holds an `Arc` that an `Interner` hands out, one per distinct value.
//!
//! A table is keyed by a hash of the value's `Debug` text (every type interned
//! derives it, and a float's `Debug` is exact), and a hit is checked with `==`
//! before it is used, so a key can only cost a miss, never a wrong value. Entries
//! are weak: a value nobody holds any more is dropped when the table next sweeps
//! (when it has doubled since the last sweep). About 0.6 µs a rule at a watch's
//! start.

use crate::core::eval::Params;
use crate::core::events::RuleInfo;
use crate::core::rules::Rule;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

/// One table of shared values of type `T`.
pub struct Interner<T> {
    table: Mutex<Table<T>>,
}

struct Table<T> {
    /// By the hash of the value's `Debug` text (the text itself is not kept: it is
    /// as long as the value's strings), the values with that hash.
    map: HashMap<u64, Vec<Weak<T>>>,
    /// Entries left by the last sweep.
    swept: usize,
}

/// Hashes what is written to it: a value's `Debug` text, without building it.
struct TextHash(std::collections::hash_map::DefaultHasher);

/// The hash of `v`'s `Debug` text (taken before any lock).
fn key_of<T: Debug>(v: &T) -> u64 {
    let mut h = TextHash(Default::default());
    // (Writing to a hasher cannot fail; a `Debug` that fails only costs a miss.)
    let _ = std::fmt::write(&mut h, format_args!("{v:?}"));
    std::hash::Hasher::finish(&h.0)
}

impl std::fmt::Write for TextHash {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        std::hash::Hasher::write(&mut self.0, s.as_bytes());
        Ok(())
    }
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            table: Mutex::new(Table {
                map: HashMap::new(),
                swept: 0,
            }),
        }
    }
}

impl<T: Debug + PartialEq> Interner<T> {
    /// `v`, shared with every other holder of an equal value.
    pub fn shared(&self, v: T) -> Arc<T> {
        let key = key_of(&v);
        self.find(key, &v).unwrap_or_else(|| self.insert(key, v))
    }

    /// `shared`, for a value borrowed: copied only when no equal one is held.
    pub fn shared_ref(&self, v: &T) -> Arc<T>
    where
        T: Clone,
    {
        let key = key_of(v);
        self.find(key, v)
            .unwrap_or_else(|| self.insert(key, v.clone()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table<T>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value held equal to `v`, if any.
    fn find(&self, key: u64, v: &T) -> Option<Arc<T>> {
        let t = self.lock();
        let same = t.map.get(&key)?;
        same.iter().filter_map(Weak::upgrade).find(|h| **h == *v)
    }

    /// Holds `v` (or an equal value another caller held meanwhile).
    fn insert(&self, key: u64, v: T) -> Arc<T> {
        let mut t = self.lock();
        let same = t.map.entry(key).or_default();
        if let Some(held) = same.iter().filter_map(Weak::upgrade).find(|h| **h == v) {
            return held;
        }
        let held = Arc::new(v);
        same.retain(|w| w.strong_count() > 0);
        same.push(Arc::downgrade(&held));
        if t.map.len() >= 2 * t.swept.max(32) {
            t.map.retain(|_, same| {
                same.retain(|w| w.strong_count() > 0);
                !same.is_empty()
            });
            t.swept = t.map.len();
        }
        held
    }

    /// Values in the table, live or not yet swept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.lock().unwrap().map.values().map(Vec::len).sum()
    }
}

static PARAMS: LazyLock<Interner<Params>> = LazyLock::new(Default::default);

/// The judging parameters of `rule` over a watch of `duration`, shared with every
/// evaluator that judges with equal ones.
pub fn params_over(rule: &Rule, duration: Duration) -> Arc<Params> {
    PARAMS.shared(rule.params_over(duration))
}

static RULE_INFOS: LazyLock<Interner<RuleInfo>> = LazyLock::new(Default::default);
static VARS: LazyLock<Interner<BTreeMap<String, String>>> = LazyLock::new(Default::default);

/// A rule as reports show it (name, query, threshold, graph link), shared with every
/// record of an equal one.
pub fn rule_info(info: &RuleInfo) -> Arc<RuleInfo> {
    RULE_INFOS.shared_ref(info)
}

/// A watch's vars, shared with every record of equal ones.
pub fn vars(vars: &BTreeMap<String, String>) -> Arc<BTreeMap<String, String>> {
    VARS.shared_ref(vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::eval::{NoData, Threshold};

    fn params(above: f64) -> Params {
        Params {
            threshold: Threshold::band(Some(above), None),
            for_: Duration::from_secs(120),
            no_data: NoData::Ok,
            judge: Default::default(),
        }
    }

    #[test]
    fn equal_values_are_held_once_and_different_ones_apart() {
        let t = Interner::default();
        let a = t.shared(params(0.5));
        let b = t.shared(params(0.5));
        assert!(Arc::ptr_eq(&a, &b));
        // Borrowed: the held one, or a copy when there is none.
        assert!(Arc::ptr_eq(&a, &t.shared_ref(&params(0.5))));
        let c = t.shared_ref(&params(0.25));
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(Arc::ptr_eq(&c, &t.shared(params(0.25))));
        assert_eq!(*c, params(0.25));
        // A value differing only in a judge's setting is its own.
        let mut d = params(0.5);
        d.judge.min_traffic = Some(1.0);
        let d = t.shared(d);
        assert!(!Arc::ptr_eq(&a, &d));
        assert_eq!(d.judge.min_traffic, Some(1.0));
        // NaN never equals itself: such a value is simply not shared, never mixed up.
        let n1 = t.shared(params(f64::NAN));
        let n2 = t.shared(params(f64::NAN));
        assert!(!Arc::ptr_eq(&n1, &n2));
    }

    #[test]
    fn a_key_that_collides_is_never_handed_out_for_another_value() {
        // Two values with one `Debug` text but not equal: each is its own, and each
        // is found again.
        #[derive(PartialEq)]
        struct Odd(u8);
        impl Debug for Odd {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("same")
            }
        }
        let t = Interner::default();
        let a = t.shared(Odd(1));
        let b = t.shared(Odd(2));
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!((a.0, b.0), (1, 2));
        assert!(Arc::ptr_eq(&a, &t.shared(Odd(1))));
        assert!(Arc::ptr_eq(&b, &t.shared(Odd(2))));
    }

    #[test]
    fn values_nobody_holds_are_swept() {
        let t = Interner::default();
        for i in 0..1000 {
            drop(t.shared(params(1000.0 + i as f64)));
        }
        let kept = t.shared(params(7.0));
        // Swept whenever it doubled: at most twice what was live at the last sweep,
        // never the thousand dead ones.
        assert!(t.len() < 64, "{} entries", t.len());
        assert!(Arc::ptr_eq(&kept, &t.shared(params(7.0))));
    }

    #[test]
    fn a_rules_parameters_are_shared_between_watches() {
        let text = "watch:\n  duration: 10m\n  interval: 15s\nrollback:\n  command: [\"true\"]\nrules:\n  - name: r\n    query: up\n    above: 1\n    for: 1m\n";
        let opts = crate::core::rules::LoadOptions {
            outside: None,
            sets: &[],
            check: false,
        };
        let (mut spec, _) = crate::core::rules::load_str("r.yaml", text, &opts).unwrap();
        let rule = spec.rules.remove(0);
        let a = params_over(&rule, Duration::from_secs(600));
        let b = params_over(&rule, Duration::from_secs(600));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(*a, rule.params_over(Duration::from_secs(600)));
    }
}
