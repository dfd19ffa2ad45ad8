//! Hardening: no client can starve or bloat the server (connection caps and timeouts,
//! bounded memory, unambiguous bodies).
