//! Hardening: the policy governs what actually runs (modify classified like a submission,
//! failing conditions never loosen review settings, half-written policy files never load,
//! decisions after the deadline refused).
