#!/usr/bin/env bash
# The notification interop tests (crates/countersign/tests/interop): the real binary against
# independent implementations from PyPI — standardwebhooks verifies webhook and callback
# signatures, slack_sdk signs Slack interactions, aiosmtpd receives email — plus the kill -9
# restart and the command line. Called by scripts/test.sh in two steps so that the install
# overlaps the Rust build and the run overlaps the API fuzzing:
#   ./scripts/test-notify.sh install            # once: target/notify-venv (pinned)
#   ./scripts/test-notify.sh run [BINARY]       # default BINARY: target/debug/countersign
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=target/notify-venv
PINS="standardwebhooks==1.1.0 slack_sdk==3.48.0 aiosmtpd==1.4.6 httpx==0.28.1 pytest==9.2.0 ruff==0.17.6"
TESTS=crates/countersign/tests/interop

install() {
    if [ "$(cat "$VENV/.pins" 2>/dev/null)" != "$PINS" ]; then
        echo "   installing the notification interop tests' dependencies into $VENV"
        rm -rf "$VENV"
        python3 -m venv "$VENV"
        # shellcheck disable=SC2086 # the pins are words
        "$VENV/bin/pip" install --quiet --disable-pip-version-check $PINS
        echo "$PINS" > "$VENV/.pins"
    fi
}

run() {
    BIN=$(realpath "${1:-target/debug/countersign}")
    (cd "$TESTS" && ../../../../"$VENV"/bin/ruff format --check . && ../../../../"$VENV"/bin/ruff check .)
    (cd "$TESTS" && COUNTERSIGN_BIN="$BIN" ../../../../"$VENV"/bin/pytest)
}

case "${1:-}" in
    install) install ;;
    run) shift; run "$@" ;;
    *) echo "usage: $0 install | run [BINARY]" >&2; exit 2 ;;
esac
