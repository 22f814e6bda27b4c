//! Integration tests: the real `rollwatch` binary against a real Prometheus (Debian's
//! `prometheus`, started once on a free loopback port, scraping an exporter the tests
//! control every second), plus a scripted fake Prometheus for injected faults only.

// These tests time real processes (the binary, Prometheus, PostgreSQL) in real seconds,
// with no tokio runtime to pause: std's monotonic clock is the right one here.
// (`clippy.toml` bans it in `src/`, where tokio's is the one clock.)
#![allow(clippy::disallowed_types)]

mod harness;

mod agreement;
mod alertmanager;
mod architecture;
mod batch_create;
mod check;
mod ci;
mod clock;
mod clock_fleet;
mod cloud_auth;
mod control_socket;
mod crash_points;
mod elapsed;
mod faults;
mod fenced_writes;
mod gate;
mod grafana;
mod import;
mod judges;
mod lease_race;
mod observe;
mod orders;
mod outbox;
mod page;
mod pagers;
mod pre_existing;
mod proxy_faults;
mod query_safety;
mod replay;
mod rtest;
mod scenarios;
mod serve;
mod shared_store;
mod slo;
mod store_conformance;
mod store_security;
mod supersede;
mod supervise;
mod values;
mod vars_guard;
mod verdict_api;
mod victoria;
mod watch;
mod watch_verdict;
