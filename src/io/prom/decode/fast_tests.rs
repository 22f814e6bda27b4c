//! The hand reader of the usual shape (`fast.rs`) against the general one: whatever
//! it accepts, serde decodes to the same samples; and it does accept the shape.

use super::*;
use proptest::prelude::*;
use std::path::Path;

/// Samples equal label for label, values bit for bit (any NaN equal to a NaN).
fn same(a: &[Sample], b: &[Sample]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.labels == y.labels
                && (x.value.to_bits() == y.value.to_bits() || x.value.is_nan() && y.value.is_nan())
        })
}

/// None if the body is consistent: not accepted, or accepted as the general reader
/// reads it.
fn difference(body: &[u8]) -> Option<String> {
    let fast = fast::vector(body)?;
    match decode_general(200, body) {
        Ok(r) if same(&fast, &r.samples) => None,
        other => Some(format!(
            "body {:?}: fast {fast:?}, general {other:?}",
            String::from_utf8_lossy(body)
        )),
    }
}

fn answer(items: &[String]) -> String {
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
        items.join(",")
    )
}

#[test]
fn the_usual_shapes_are_read_by_hand_as_serde_reads_them() {
    let bodies = [
        answer(&[]),
        answer(&[r#"{"metric":{},"value":[1700000000,"1"]}"#.into()]),
        answer(&[
            r#"{"metric":{"pod":"a","__name__":"up"},"value":[1700000000.123,"0.25"]}"#.into(),
            r#"{"metric":{"pod":"b"},"value":[1700000000.5,"NaN"]}"#.into(),
            r#"{"metric":{"pod":"c"},"value":[-0,"+Inf"]}"#.into(),
            r#"{"metric":{"pod":"a","__name__":"up"},"value":[0.0,"-Inf"]}"#.into(),
            r#"{"metric":{"pod":"d","pod":"e"},"value":[1,"1e-3"]}"#.into(),
            r#"{"metric":{"ünï":"cødé ✓","x":""},"value":[1,"-2"]}"#.into(),
        ]),
        // Pretty-printed: whitespace anywhere between tokens.
        " {\n \"status\" : \"success\" ,\r\n\t\"data\": { \"resultType\": \"vector\", \"result\": [ { \"metric\": { \"a\" : \"b\" } , \"value\" : [ 1 , \"2\" ] } ] } }\n ".into(),
    ];
    for body in &bodies {
        let fast = fast::vector(body.as_bytes());
        assert!(fast.is_some(), "not read by hand: {body}");
        assert_eq!(difference(body.as_bytes()), None);
        // And `decode` gives the same, warnings included (the repeated label set).
        let general = decode_general(200, body.as_bytes()).unwrap();
        let r = decode(200, body.as_bytes()).unwrap();
        assert!(same(&r.samples, &general.samples));
        assert_eq!(r.warnings, general.warnings);
    }
}

#[test]
fn anything_else_goes_to_the_general_reader() {
    let sample = r#"{"metric":{"a":"b"},"value":[1,"2"]}"#;
    let others = [
        // Valid, but not the one shape.
        format!(
            r#"{{"status":"success","warnings":["w"],"data":{{"resultType":"vector","result":[{sample}]}}}}"#
        ),
        format!(r#"{{"data":{{"resultType":"vector","result":[{sample}]}},"status":"success"}}"#),
        format!(r#"{{"status":"success","data":{{"result":[{sample}],"resultType":"vector"}}}}"#),
        answer(&[r#"{"value":[1,"2"],"metric":{"a":"b"}}"#.into()]),
        answer(&[r#"{"metric":{"a":"b\u0041"},"value":[1,"2"]}"#.into()]),
        answer(&[r#"{"metric":{"a\"":"b"},"value":[1,"2"]}"#.into()]),
        answer(&[r#"{"metric":{"a":"b"},"value":[1e9,"2"]}"#.into()]),
        answer(&[r#"{"value":[1,"2"]}"#.into()]),
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{sample}]}},"isPartial":true}}"#
        ),
        // Not valid.
        answer(&[r#"{"metric":{"a":"b"},"value":[1,"2"]},"#.into()]),
        answer(&[r#"{"metric":{"a":"b"},"value":[01,"2"]}"#.into()]),
        answer(&[r#"{"metric":{"a":"b"},"value":[1.,"2"]}"#.into()]),
        answer(&[r#"{"metric":{"a":"b"},"value":[1,"two"]}"#.into()]),
        answer(&[r#"{"metric":{"a":"b	"},"value":[1,"2"]}"#.into()]),
        answer(&[sample.into()]) + "x",
        answer(&[sample.into()])[..40].to_string(),
    ];
    for body in &others {
        assert!(
            fast::vector(body.as_bytes()).is_none(),
            "read by hand: {body}"
        );
    }
    // Not UTF-8.
    let mut bad = answer(&[sample.into()]).into_bytes();
    bad[48] = 0xff;
    assert!(fast::vector(&bad).is_none());
    // A 2xx status only: a 503 with a success body is still an error.
    let ok = answer(&[sample.into()]);
    assert!(matches!(
        decode(503, ok.as_bytes()),
        Err(QueryError::Http { status: 503, .. })
    ));
}

/// `body`, cut short, with a byte removed, and with each of a few bytes inserted, at
/// every `step`th place.
fn mutations(body: &[u8], step: usize) -> Vec<Vec<u8>> {
    let inserts: [&[u8]; 9] = [
        b" ", b"\\", b"\"", b",", b"}", b"0", b"\n", b"\xc3", b"\x01",
    ];
    let mut out = vec![body.to_vec()];
    for at in (0..body.len()).step_by(step) {
        out.push(body[..at].to_vec());
        let mut cut = body.to_vec();
        cut.remove(at);
        out.push(cut);
        for ins in inserts {
            let mut v = body.to_vec();
            v.splice(at..at, ins.iter().copied());
            out.push(v);
        }
    }
    out
}

/// Every body of the fuzz corpus, and each mutated at many places, and a body of the
/// usual shape mutated at every place: nothing the hand reader accepts is read
/// otherwise by serde.
#[test]
fn the_fuzz_corpus_and_mutations_read_the_same_by_hand() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/prom_response");
    let (mut bodies, mut accepted, mut failed) = (0, 0, Vec::new());
    for entry in std::fs::read_dir(&dir).unwrap() {
        let body = std::fs::read(entry.unwrap().path()).unwrap();
        bodies += 1;
        accepted += usize::from(fast::vector(&body).is_some());
        let variants = mutations(&body, (body.len() / 16).max(1));
        failed.extend(variants.iter().filter_map(|v| difference(v)));
    }
    let usual = answer(&[
        r#"{"metric":{"pod":"a","__name__":"up"},"value":[1700000000.123,"0.25"]}"#.into(),
        r#"{"metric":{},"value":[-1.5,"NaN"]}"#.into(),
    ]);
    let variants = mutations(usual.as_bytes(), 1);
    let usual_accepted = variants
        .iter()
        .filter(|v| fast::vector(v).is_some())
        .count();
    failed.extend(variants.iter().filter_map(|v| difference(v)));
    assert!(
        failed.is_empty(),
        "{} differences:\n{}",
        failed.len(),
        failed[..failed.len().min(5)].join("\n")
    );
    assert!(bodies >= 1000, "only {bodies} bodies");
    // (The corpus is mostly the fuzzer's broken bodies.)
    assert!(accepted >= 4, "only {accepted} corpus bodies read by hand");
    assert!(
        usual_accepted >= 100,
        "only {usual_accepted} mutations read by hand"
    );
}

/// Any text as names and values, written as serde_json writes it (escaped where
/// needed) and also raw between quotes (which may not be valid JSON at all).
fn pairs() -> impl Strategy<Value = Vec<Vec<(String, String)>>> {
    let s = prop_oneof![
        "[a-z_]{0,8}",
        "\\PC{0,6}",
        any::<String>().prop_map(|s| s.chars().take(6).collect()),
        Just("\"".to_string()),
        Just("\\".to_string()),
    ];
    prop::collection::vec(prop::collection::vec((s.clone(), s), 0..5), 0..5)
}

proptest! {
    #[test]
    fn generated_answers_read_the_same_by_hand(
        sets in pairs(),
        values in prop::collection::vec(
            prop_oneof![Just("1".to_string()), Just("NaN".into()), Just("-Inf".into()), "[-+.eE0-9a-z]{0,6}"],
            5,
        ),
        time in prop_oneof![Just("1700000000.123".to_string()), "-?[0-9]{1,12}(\\.[0-9]{0,4})?"],
    ) {
        for raw in [false, true] {
            let items: Vec<String> = sets
                .iter()
                .zip(values.iter().cycle())
                .map(|(set, v)| {
                    let text = |s: &str| if raw { format!("\"{s}\"") } else { serde_json::to_string(s).unwrap() };
                    let metric: Vec<String> =
                        set.iter().map(|(k, v)| format!("{}:{}", text(k), text(v))).collect();
                    format!(r#"{{"metric":{{{}}},"value":[{time},"{v}"]}}"#, metric.join(","))
                })
                .collect();
            let body = answer(&items);
            prop_assert_eq!(difference(body.as_bytes()), None);
            // Plain text, a valid time and value: read by hand.
            let plain = |s: &String| s.bytes().all(|c| c != b'"' && c != b'\\' && c >= 0x20);
            if sets.iter().flatten().all(|(k, v)| plain(k) && plain(v))
                && decode_general(200, body.as_bytes()).is_ok()
            {
                prop_assert!(fast::vector(body.as_bytes()).is_some(), "{}", body);
            }
        }
    }
}
