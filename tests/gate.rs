//! gate tests
