//! Floor 4, what renders a watch for people and tools: each is a `Sink` on the event
//! bus (`core::events`), chosen by the commands above.
//! - `event_lines`: the log of a watch (`LogSink`) and the `--events` JSON lines;
//! - `report`: the release report (`--report`: JSON, Markdown, HTML); `replay`: what
//!   `replay` prints; `board`: the agent page's live record of each watch (a sink);
//!   `page`: the agent page's HTML;
//! - `live`: the live terminal view; `logging`: the tracing subscriber around it.

pub mod board;
pub mod event_lines;
pub mod live;
pub mod logging;
pub mod page;
pub mod replay;
pub mod report;
