//! What every API handler is given: the router's state (`Api`) and who called
//! (`Caller`, set by the token check). Apart from `api.rs`, so that the handlers of
//! other files (`orders.rs`) take them from a sibling and never from the router that
//! names them.

use super::tokens::Tokens;
use crate::run::agent::Agent;
use std::sync::Arc;

#[derive(Clone)]
pub(super) struct Api {
    pub(super) agent: Arc<Agent>,
    pub(super) token: Option<Arc<Tokens>>,
    /// The verdict routes answer anyone: their errors name only the request's bad
    /// fields (see `run::agent::Agent::verdict_once`).
    pub(super) open_verdicts: bool,
}

/// Whose token a request carried (`name:token` lines of the token file), for the
/// record of a manual order; None for a token without a name, or no token at all.
#[derive(Debug, Clone)]
pub(super) struct Caller(pub(super) Option<String>);
