//! Text within a vendor's limits, shared by the payload builders.

/// `s` cut to at most `max` characters (ending with `…` when cut): the vendors'
/// limits count characters.
pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
