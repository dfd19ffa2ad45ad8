//! Hardening: one person is one person (names compared without regard to case, one owner
//! per agent, separation of duties in post-hoc review, revocation ends open waits).
