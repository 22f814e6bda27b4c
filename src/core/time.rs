//! Times as the operator writes them on a command line or in a deploy file (RFC 3339,
//! Unix seconds, `now`, `-2h`, `now-2h`), and back as RFC 3339. Pure: the caller
//! passes "now", so the parsing is tested without a clock. Used by `replay`.

/// Parses a time: RFC 3339, Unix seconds, `now`, `-2h` or `now-2h`. Unix ms out.
pub fn parse_time(s: &str, now_ms: i64) -> Result<i64, String> {
    let t = s.trim();
    let rel = t.strip_prefix("now").unwrap_or(t);
    if rel.is_empty() {
        return Ok(now_ms);
    }
    if let Some(d) = rel.strip_prefix('-') {
        let d = crate::core::rules::parse_duration(d)
            .map_err(|e| format!("invalid relative time {t:?}: {e}"))?;
        return Ok(now_ms - d.as_millis() as i64);
    }
    if t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        let secs: f64 = t.parse().map_err(|_| format!("invalid Unix time {t:?}"))?;
        return Ok((secs * 1000.0).round() as i64);
    }
    t.parse::<jiff::Timestamp>()
        .map(|ts| ts.as_millisecond())
        .map_err(|e| format!("invalid time {t:?} ({e}); use RFC 3339 (2026-11-20T14:00:00Z), Unix seconds, `now` or `-2h`"))
}

/// RFC 3339 in UTC, to the second.
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.round(jiff::Unit::Second)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| t.to_string())
        })
        .unwrap_or_else(|_| ms.to_string())
}

/// Reads deploy times: one per line, `#` comments and blank lines skipped.
pub fn parse_deploys(text: &str, now: i64) -> Result<Vec<i64>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.split('#').next().unwrap_or("").trim();
        if t.is_empty() {
            continue;
        }
        out.push(parse_time(t, now).map_err(|e| format!("line {}: {e}", i + 1))?);
    }
    if out.is_empty() {
        return Err("no deploy times in the file".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_time_form() {
        let now = 1_800_000_000_000;
        assert_eq!(parse_time("now", now), Ok(now));
        assert_eq!(parse_time("-2h", now), Ok(now - 7_200_000));
        assert_eq!(parse_time("now-30m", now), Ok(now - 1_800_000));
        assert_eq!(parse_time("1700000000", now), Ok(1_700_000_000_000));
        assert_eq!(parse_time("1700000000.5", now), Ok(1_700_000_000_500));
        assert_eq!(
            parse_time("2026-11-20T14:00:00Z", now),
            Ok(1_795_183_200_000)
        );
        assert_eq!(
            parse_time("2026-11-20T09:00:00-05:00", now),
            Ok(1_795_183_200_000)
        );
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("-2", now).is_err());
    }

    #[test]
    fn deploy_files_skip_comments_and_report_bad_lines() {
        let now = 1_800_000_000_000;
        assert_eq!(
            parse_deploys("# deploys\n1700000000\n\n1700003600 # v2\n", now),
            Ok(vec![1_700_000_000_000, 1_700_003_600_000])
        );
        assert!(parse_deploys("1700000000\nsoon\n", now)
            .unwrap_err()
            .starts_with("line 2"));
        assert!(parse_deploys("# none\n", now).is_err());
    }
}
