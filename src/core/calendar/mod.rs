//! Deploy calendars: when changes may go out, and when they must not.
//!
//! A calendar file names a time zone, the weekly windows inside which deploys are
//! allowed, and the freezes during which they are not (see `rules/calendar.yaml`).
//! Loading follows the rule files' two steps: `core::yaml` parses the text into a
//! spanned tree, and `load` walks it, validating every key and value and
//! collecting *all* mistakes, each with its file:line:column. A misspelt key is an
//! error, never ignored: a freeze that silently does not apply is exactly the failure a
//! gate exists to prevent.
//!
//! Everything here is in the calendar's *local wall-clock time*: windows are "Thursday
//! 02:00 to 06:00 in New York", freezes are whole local days. Turning wall-clock times
//! into instants (and the DST questions that raises) is `decide`'s job, done with jiff.

pub mod decide;
mod load;
mod model;

pub use load::load_str;
pub use model::*;

#[cfg(test)]
mod tests;
