//! The Claude Code hook and permission-prompt tool on recorded inputs.
