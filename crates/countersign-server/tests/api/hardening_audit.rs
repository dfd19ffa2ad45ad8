//! Hardening: the audit log proves its own completeness (signed checkpoints, state
//! re-derived from the log) and a damaged or read-only database is reported, not served.
