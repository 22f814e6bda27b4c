//! replay tests
