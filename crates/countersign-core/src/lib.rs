//! The pure domain of Countersign: proposed actions, names and identities, tiers and
//! statuses, the policy engine, the approval lifecycle, the SLA ladder, the audit chain's
//! hashing, approval statistics and the cases that become training data.
//!
//! Nothing here does IO: no clock (time is passed in), no network, no database, no
//! randomness. The server stores and transports what this crate decides, and tests run here
//! in microseconds.

pub mod action;
pub mod approvers;
pub mod audit;
pub mod duration;
pub mod glob;
pub mod graduation;
pub mod grant;
pub mod identity;
pub mod learning;
pub mod lifecycle;
pub mod name;
pub mod notify;
pub mod policy;
pub mod sla;
pub mod stats;
pub mod summary;
pub mod tier;
pub mod vocabulary;

pub use action::{ActionName, AgentName, Confidence, Hints, ProposedAction};
pub use approvers::Approvers;
pub use name::Name;
pub use policy::{Classification, Policy};
pub use tier::{Status, Tier};
