//! A watch's rule snapshot and the names a request may use: the pure checks that
//! creation, the verdict routes, driving a watch and the outbox share (kept apart
//! from `create.rs` so that none of those imports creation).

use super::types::{lock, CreateError, Sweeps};
use crate::core::rules::{self, WatchSpec};
use crate::io::store::NewWatch;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tracing::{info, warn};

/// A valid rule-file name or watch id: letters, digits, `-`, `_`, `.` (and `:` for ids).
pub(super) fn valid_name(s: &str, extra: &[char]) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') || extra.contains(&c)
        })
}

/// Loads a watch's snapshot (never the file as it is now).
pub fn load_snapshot(def: &NewWatch) -> Result<WatchSpec, String> {
    load_def(def, &crate::io::host::HOST).map_err(|e| e.to_string())
}

/// A watch's rule file loaded with its vars, `env:` and `file:` sources read through
/// `outside`. Errors name the file as its author knows it (`checkout.yaml:3:5`); the
/// spec's path says it is the watch's snapshot, not the file as it is now.
fn load_def(def: &NewWatch, outside: &dyn rules::Outside) -> Result<WatchSpec, rules::LoadError> {
    let sets: Vec<(String, String)> = def.vars.clone().into_iter().collect();
    rules::load_str(
        &format!("{}.yaml", def.rules),
        &def.rules_text,
        &rules::LoadOptions {
            outside: Some(outside),
            sets: &sets,
            check: false,
        },
    )
    .map(|(mut spec, _)| {
        spec.path = format!("{}.yaml (snapshot)", def.rules).into();
        spec
    })
}

/// The loaded snapshots of the running watches, shared (issue 21): watches of one rule
/// file with the same vars hold one parsed `WatchSpec`, loaded once, not one each (a
/// spec of 5 rules is about 4 KB, and its load compiles each query's regexes).
///
/// Only a load that read nothing outside the file is shared: one whose `env:` or
/// `file:` source was read stays the watch's own, so a rotated token file reaches the
/// next watch as it does without sharing. Entries are weak: a spec lives as long as a
/// watch (or a creation) holds it, and the next load after that reads the file again.
#[derive(Default)]
pub(super) struct SpecCache(Mutex<Specs>);

#[derive(Default)]
struct Specs {
    map: HashMap<SpecKey, Weak<WatchSpec>>,
    /// The rule files' texts the keys hold, each once (watches with vars of their
    /// own would otherwise keep a copy of the text a watch, in their keys).
    texts: HashSet<Arc<str>>,
    /// When dead entries are swept.
    sweeps: Sweeps,
}

#[derive(Hash, PartialEq, Eq)]
struct SpecKey {
    rules: String,
    text: Arc<str>,
    vars: BTreeMap<String, String>,
}

impl Specs {
    /// `text`, held once.
    fn text(&mut self, text: &str) -> Arc<str> {
        if let Some(t) = self.texts.get(text) {
            return t.clone();
        }
        let t: Arc<str> = Arc::from(text);
        self.texts.insert(t.clone());
        t
    }
}

impl SpecCache {
    /// `def`'s snapshot: a running watch's, if one with the same rule file text and
    /// vars has it, else loaded now (and kept for the next, see above).
    pub(super) fn load(&self, def: &NewWatch) -> Result<Arc<WatchSpec>, rules::LoadError> {
        let key = {
            let mut specs = lock(&self.0);
            let key = SpecKey {
                rules: def.rules.clone(),
                text: specs.text(&def.rules_text),
                vars: def.vars.clone(),
            };
            if let Some(spec) = specs.map.get(&key).and_then(Weak::upgrade) {
                return Ok(spec);
            }
            key
        };
        let outside = Watched::new(&crate::io::host::HOST);
        let spec = Arc::new(load_def(def, &outside)?);
        if !outside.read.load(Ordering::Relaxed) {
            let mut specs = lock(&self.0);
            if specs.sweeps.due(specs.map.len()) {
                specs.map.retain(|_, w| w.strong_count() > 0);
                specs.texts.retain(|t| Arc::strong_count(t) > 1);
                let left = specs.map.len();
                specs.sweeps.swept(left);
            }
            specs.map.insert(key, Arc::downgrade(&spec));
        }
        Ok(spec)
    }

    /// The number of distinct snapshots held by running watches.
    #[cfg(test)]
    pub(super) fn live(&self) -> usize {
        lock(&self.0)
            .map
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    /// The number of entries, dead ones included, and of texts held.
    #[cfg(test)]
    fn entries(&self) -> (usize, usize) {
        let specs = lock(&self.0);
        (specs.map.len(), specs.texts.len())
    }
}

/// An `Outside` that notes whether anything was read through it.
#[derive(Debug)]
struct Watched<'a> {
    inner: &'a dyn rules::Outside,
    read: AtomicBool,
}

impl<'a> Watched<'a> {
    fn new(inner: &'a dyn rules::Outside) -> Self {
        Watched {
            inner,
            read: AtomicBool::new(false),
        }
    }
}

impl rules::Outside for Watched<'_> {
    fn var(&self, name: &str) -> Option<String> {
        self.read.store(true, Ordering::Relaxed);
        self.inner.var(name)
    }
    fn read(&self, path: &str) -> std::io::Result<String> {
        self.read.store(true, Ordering::Relaxed);
        self.inner.read(path)
    }
}

/// A rule file that does not load for an API request. A caller of a route that may be
/// open to anyone (`open`: the verdict routes) is told only the request's bad fields
/// (`LoadError::public_message`), never the file's patterns or its other variables;
/// a caller with the token gets every error's message (`api_message`). Neither gets
/// a line of the file (a command line may hold a secret) or a `--set` hint. The
/// agent's log says which rule file and what, without quoting the file.
pub(super) fn refused(rules: &str, e: &rules::LoadError, open: bool) -> CreateError {
    let why: Vec<&str> = e.errors().map(|d| d.message.as_str()).collect();
    let public = if open {
        e.public_message()
    } else {
        e.api_message()
    };
    if e.errors().all(|d| d.public.is_some()) {
        info!(event = "request_refused", rules = %rules, reasons = ?why, "a request's vars do not fit the rule file");
    } else {
        warn!(event = "rule_file_invalid", rules = %rules, errors = why.len(), "a rule file does not load; run `rollwatch check` on it");
    }
    CreateError::BadRequest(public)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "vars:\n  service:\nwatch:\n  duration: 1h\n  interval: 15s\n  prometheus: http://127.0.0.1:1\nrollback:\n  command: [\"true\"]\nrules:\n  - name: errors\n    query: rate(errors_total{service=\"${service}\"}[5m])\n    above: 1\n    for: 1m\n";

    fn def(id: &str, service: &str, text: &str) -> NewWatch {
        NewWatch {
            id: id.into(),
            rules: "checkout".into(),
            rules_text: text.into(),
            vars: [("service".to_string(), service.to_string())].into(),
            duration_ms: 60_000,
            created_ms: 0,
            key: None,
        }
    }

    #[test]
    fn watches_of_one_file_and_vars_share_one_snapshot_while_one_runs() {
        let cache = SpecCache::default();
        let a = cache.load(&def("a", "checkout", TEXT)).unwrap();
        let b = cache.load(&def("b", "checkout", TEXT)).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "same file, same vars: one spec");
        assert_eq!(a.path.display().to_string(), "checkout.yaml (snapshot)");
        assert!(a.rules[0]
            .query
            .to_string()
            .contains("service=\"checkout\""));
        let other = cache.load(&def("c", "payments", TEXT)).unwrap();
        assert!(!Arc::ptr_eq(&a, &other), "other vars: a spec of its own");
        assert!(other.rules[0]
            .query
            .to_string()
            .contains("service=\"payments\""));
        let edited = TEXT.replace("above: 1", "above: 2");
        let e = cache.load(&def("d", "checkout", &edited)).unwrap();
        assert!(!Arc::ptr_eq(&a, &e), "another text: a spec of its own");
        assert_eq!(cache.live(), 3);
        drop((a, b, other, e));
        assert_eq!(cache.live(), 0, "a spec lives only while a watch holds it");
    }

    /// A load that read a file (or the environment) is never shared: a rotated
    /// webhook file reaches the next watch, as it would with no sharing.
    #[test]
    fn a_snapshot_that_read_a_file_is_the_watchs_own() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("slack");
        std::fs::write(&file, "https://hooks.slack.com/services/T/B/one").unwrap();
        let text = format!("{TEXT}notify:\n  - slack: {{file: {}}}\n", file.display());
        let cache = SpecCache::default();
        let a = cache.load(&def("a", "checkout", &text)).unwrap();
        std::fs::write(&file, "https://hooks.slack.com/services/T/B/two").unwrap();
        let b = cache.load(&def("b", "checkout", &text)).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(cache.live(), 0, "neither is kept for another watch");
    }

    /// Entries of ended watches do not pile up: 1,000 watches one after another
    /// leave a map of at most a few dozen entries.
    #[test]
    fn the_snapshots_of_ended_watches_are_swept() {
        let cache = SpecCache::default();
        let kept = cache.load(&def("k", "kept", TEXT)).unwrap();
        let running: Vec<_> = (0..10)
            .map(|i| cache.load(&def("r", &format!("r{i}"), TEXT)).unwrap())
            .collect();
        for i in 0..1000 {
            // Each of a text of its own, as edits of the file would be.
            let text = TEXT.replace("above: 1", &format!("above: {}", i + 2));
            drop(cache.load(&def("w", &format!("s{i}"), &text)).unwrap());
        }
        let (entries, texts) = cache.entries();
        assert!(entries <= 65, "{entries} entries");
        assert!(texts <= 65, "{texts} texts");
        assert_eq!(cache.live(), 11);
        assert!(Arc::ptr_eq(
            &kept,
            &cache.load(&def("k2", "kept", TEXT)).unwrap()
        ));
        assert!(Arc::ptr_eq(
            &running[3],
            &cache.load(&def("r3b", "r3", TEXT)).unwrap()
        ));
    }

    /// Watches with vars of their own hold the file's text once, not once each.
    #[test]
    fn watches_with_vars_of_their_own_hold_the_text_once() {
        let cache = SpecCache::default();
        let specs: Vec<_> = (0..100)
            .map(|i| cache.load(&def("w", &format!("s{i}"), TEXT)).unwrap())
            .collect();
        assert_eq!(cache.entries(), (100, 1));
        drop(specs);
    }

    #[test]
    fn a_file_that_does_not_load_is_refused_and_nothing_is_kept() {
        let cache = SpecCache::default();
        let bad = TEXT.replace("above: 1", "above: [");
        let err = cache.load(&def("a", "checkout", &bad)).unwrap_err();
        assert!(err.to_string().contains("checkout.yaml:"), "{err}");
        assert_eq!(cache.live(), 0);
    }
}
