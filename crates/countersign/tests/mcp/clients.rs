//! Other real clients: the Python SDK (both eras), the OpenAI Agents SDK, the Inspector CLI.
