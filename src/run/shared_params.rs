//! Equal judging parameters held once for every watch that judges with them.
//!
//! Why: a rule's `Params` is 472 bytes (the judges' settings, nearly all unused by
//! a given rule), and each watch's evaluator kept its own copy: 2.3 KB a watch of
//! five rules, 230 MB at 100,000 watches (issue 21), where watches of one rule file
//! judge with the same few. An evaluator now holds an `Arc`, and this table hands
//! out one per distinct value.
//!
//! The table is keyed by the parameters' `Debug` text (every type in them derives
//! it, and a float's `Debug` is exact), and a hit is checked with `==` before it is
//! used, so a key can only cost a miss, never a wrong rule. Entries are weak: a
//! value no watch uses any more is dropped when the table next sweeps (when it has
//! doubled since the last sweep). About 0.6 µs a rule at a watch's start.

use crate::core::eval::Params;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

#[derive(Default)]
struct Table {
    map: HashMap<String, Weak<Params>>,
    /// Entries left by the last sweep.
    swept: usize,
}

static TABLE: LazyLock<Mutex<Table>> = LazyLock::new(Default::default);

/// `p`, shared with every other holder of an equal value.
pub fn shared(p: Params) -> Arc<Params> {
    let key = format!("{p:?}");
    let mut t = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(held) = t.map.get(&key).and_then(Weak::upgrade) {
        if *held == p {
            return held;
        }
    }
    let held = Arc::new(p);
    t.map.insert(key, Arc::downgrade(&held));
    if t.map.len() >= 2 * t.swept.max(32) {
        t.map.retain(|_, w| w.strong_count() > 0);
        t.swept = t.map.len();
    }
    held
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::eval::{NoData, Threshold};
    use std::time::Duration;

    fn params(above: f64) -> Params {
        Params {
            threshold: Threshold::band(Some(above), None),
            for_: Duration::from_secs(120),
            no_data: NoData::Ok,
            judge: Default::default(),
        }
    }

    #[test]
    fn equal_parameters_are_held_once_and_different_ones_apart() {
        let a = shared(params(0.5));
        let b = shared(params(0.5));
        assert!(Arc::ptr_eq(&a, &b));
        let c = shared(params(0.25));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(*c, params(0.25));
        // A value differing only in a judge's setting is its own.
        let mut d = params(0.5);
        d.judge.min_traffic = Some(1.0);
        let d = shared(d);
        assert!(!Arc::ptr_eq(&a, &d));
        assert_eq!(d.judge.min_traffic, Some(1.0));
        // NaN never equals itself: such a value is simply not shared, never mixed up.
        let n1 = shared(params(f64::NAN));
        let n2 = shared(params(f64::NAN));
        assert!(!Arc::ptr_eq(&n1, &n2));
    }

    #[test]
    fn values_nobody_holds_are_swept() {
        for i in 0..1000 {
            drop(shared(params(1000.0 + i as f64)));
        }
        let kept = shared(params(7.0));
        let t = TABLE.lock().unwrap();
        // Swept whenever it doubled: at most twice what was live at the last sweep
        // (other tests' values included), never the thousand dead ones.
        assert!(t.map.len() < 200, "{} entries", t.map.len());
        drop(t);
        assert!(Arc::ptr_eq(&kept, &shared(params(7.0))));
    }
}
