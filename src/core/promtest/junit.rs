//! The results of a `rollwatch test` run as JUnit XML, the report CI systems read:
//! one `<testsuite>` per test file, one `<testcase>` per test, a `<failure>` holding
//! the diff.

use std::fmt::Write as _;

/// One test's result.
#[derive(Debug, Clone, PartialEq)]
pub struct TestResult {
    pub file: String,
    pub name: String,
    /// None: passed; else the diff (or why it could not run).
    pub failure: Option<Vec<String>>,
    /// Refused (a feature rollwatch cannot carry): a skip with its reason.
    pub skipped: Option<String>,
}

/// Escapes text for an XML attribute or element.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot hold at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The JUnit document for `results`, grouped by file in the order first seen.
pub fn render(results: &[TestResult]) -> String {
    let mut files: Vec<&str> = Vec::new();
    for r in results {
        if !files.contains(&r.file.as_str()) {
            files.push(&r.file);
        }
    }
    let failures = results.iter().filter(|r| r.failure.is_some()).count();
    let skipped = results.iter().filter(|r| r.skipped.is_some()).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"rollwatch test\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">",
        results.len()
    );
    for file in files {
        let mine: Vec<&TestResult> = results.iter().filter(|r| r.file == file).collect();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
            escape(file),
            mine.len(),
            mine.iter().filter(|r| r.failure.is_some()).count(),
            mine.iter().filter(|r| r.skipped.is_some()).count(),
        );
        for r in mine {
            let head = format!(
                "    <testcase classname=\"{}\" name=\"{}\"",
                escape(file),
                escape(&r.name)
            );
            match (&r.failure, &r.skipped) {
                (Some(diff), _) => {
                    let _ = writeln!(
                        out,
                        "{head}>\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                        escape(diff.first().map_or("failed", |s| s.as_str())),
                        escape(&diff.join("\n"))
                    );
                }
                (None, Some(why)) => {
                    let _ = writeln!(
                        out,
                        "{head}>\n      <skipped message=\"{}\"/>\n    </testcase>",
                        escape(why)
                    );
                }
                (None, None) => {
                    let _ = writeln!(out, "{head}/>");
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_render_as_escaped_junit() {
        let r = |name: &str, failure: Option<Vec<String>>| TestResult {
            file: "a&b.yaml".into(),
            name: name.into(),
            failure,
            skipped: None,
        };
        let xml = render(&[
            r("ok <1>", None),
            r(
                "bad",
                Some(vec!["outcome: expected \"x\"".into(), "y".into()]),
            ),
        ]);
        assert!(xml.contains(
            "<testsuites name=\"rollwatch test\" tests=\"2\" failures=\"1\" skipped=\"0\">"
        ));
        assert!(xml.contains("<testsuite name=\"a&amp;b.yaml\" tests=\"2\" failures=\"1\""));
        assert!(xml.contains("name=\"ok &lt;1&gt;\"/>"));
        assert!(xml.contains("<failure message=\"outcome: expected &quot;x&quot;\">outcome: expected &quot;x&quot;\ny</failure>"));
        assert_eq!(escape("\u{1}"), "\u{fffd}");
    }
}
