//! The conformance suite through the proxy and against the server directly.
