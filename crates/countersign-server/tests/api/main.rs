//! The API through the real server on 127.0.0.1 port 0 with a real SQLite file: the life of
//! each tier, long-poll and SSE wake-ups, every access rule, idempotency, bad input at every
//! endpoint, the SLA ladder on a virtual clock, hot reload, the OpenAPI document, approval
//! metrics and the training-data export. One
//! file per area; they share the server fixture.

mod access;
mod bad_input;
mod fixture;
mod graduation;
mod grants;
mod idempotency;
mod operations;
mod stats;
mod tiers;
mod waiting;

// The hardening stories (issue: close the holes found by attacking the gateway), one file
// per area.
mod hardening_audit;
mod hardening_identity;
mod hardening_limits;
mod hardening_policy;
mod policy_classify;
// The reviewer web UI, through the same server.
mod web;
// Notifications, callbacks and Slack approvals (issue: SLA ladder and notifications).
mod notify;
mod receivers;
mod slack;
