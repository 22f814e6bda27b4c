//! People's orders as the store keeps them (issue 22): the rows of the `orders`
//! table and what asking for one answered. Kept apart from `api.rs` (the trait names
//! the methods) because it is its own concern: an order is written by whichever agent
//! a person reached, and carried out by the agent that holds the watch's lease.
//!
//! At most one `rollback` and one `pause` order per watch can ever be accepted (a
//! unique index, so two people pressing at once on two agents get one order and one
//! answer naming the other). The command itself is still claimed as a rule's is
//! (`claim_fenced`), so a person's and a rule's rollback never both run.

/// An order as a person gave it, to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    /// `core::control::Order::name`.
    pub kind: String,
    /// `hold`, `extend`: how long, in ms.
    pub duration_ms: Option<i64>,
    pub who: String,
    pub reason: String,
    /// When it was given, on the store's clock (Unix ms).
    pub at_ms: i64,
}

/// Where a stored order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Not carried out yet (the watch's holder takes it at its next look).
    Pending,
    /// Carried out; `result` says what it did.
    Done,
    /// Refused when it was carried out (nothing changed); `result` says why.
    Refused,
}

impl OrderState {
    pub fn as_str(&self) -> &'static str {
        match self {
            OrderState::Pending => "pending",
            OrderState::Done => "done",
            OrderState::Refused => "refused",
        }
    }
    pub fn parse(s: &str) -> Option<OrderState> {
        match s {
            "pending" => Some(OrderState::Pending),
            "done" => Some(OrderState::Done),
            "refused" => Some(OrderState::Refused),
            _ => None,
        }
    }
}

/// A stored order.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRow {
    pub id: i64,
    pub watch: String,
    pub order: NewOrder,
    pub state: OrderState,
    pub result: Option<String>,
    pub done_ms: Option<i64>,
}

impl OrderRow {
    /// As the API and `rollwatch ctl` show it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "watch": self.watch,
            "order": self.order.kind,
            "duration_ms": self.order.duration_ms,
            "by": self.order.who,
            "reason": self.order.reason,
            "at_ms": self.order.at_ms,
            "state": self.state,
            "result": self.result,
            "done_ms": self.done_ms,
        })
    }
}

/// Who a `supersede` order is recorded as given by (a watch with the same key
/// was created).
pub const SUPERSEDER: &str = crate::core::control::ROLLWATCH;

/// The reason of the `supersede` order a new watch `by` gives the older one.
pub fn supersede_reason(by: &str) -> String {
    format!("superseded by watch {by} (the same watch.key)")
}

/// What asking for an order answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Ordered {
    /// Stored, to be carried out by the watch's holder.
    Queued(OrderRow),
    /// A person already ordered this (`rollback`, `pause`): who, and when.
    Taken(OrderRow),
    /// A rule's command of this kind was already claimed: which rule, and when.
    Claimed { rule: String, at_ms: i64 },
    /// No watch has that id.
    NoWatch,
    /// The watch is not running any more.
    NotRunning(super::WatchState),
}
