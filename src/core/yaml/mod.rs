//! A YAML document as a tree of nodes that remember where they came from, and the
//! toolkit every loader of rollwatch shares (rule files, calendars, import): `walk`
//! (walking the tree while collecting diagnostics) and `diag` (`file:line:column`
//! with a caret and "did you mean").
//!
//! Rule files are loaded in two steps (the way vector compiles its config): this module
//! parses YAML into a spanned tree, and `load` walks the tree, validating every key and
//! value and collecting *all* errors with their file:line:column. Deserialising straight
//! into structs would stop at the first unknown key; a rollback tool must instead show
//! every mistake at once and never ignore a misspelt key.

pub mod diag;
mod tree;
pub(crate) mod walk;

pub use diag::{Diagnostic, Severity};
pub use tree::*;
