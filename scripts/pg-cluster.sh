#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the tests and benchmarks, kept under DIR (default
# target/pg): `start` installs Debian's postgresql when its binaries are missing, creates the
# cluster on first use, starts it on a free loopback port and prints the URL of a fresh
# database; `stop` stops it; `url` prints the URL again; `remove` stops it and deletes DIR.
#
# initdb refuses to run as root, so as root the cluster belongs to the `postgres` user that
# the package creates. Durability is PostgreSQL's default and stated anyway: fsync on,
# synchronous_commit on. Password authentication (scram-sha-256) over TCP, so that the tests
# can check what a wrong password says.
#
#   scripts/pg-cluster.sh start [DIR]   -> postgres://countersign:countersign@127.0.0.1:PORT/countersign
#   scripts/pg-cluster.sh stop [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

command="${1:-}"
dir="${2:-target/pg}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
# Where the cluster lives: DIR itself, or (as root, when the `postgres` user cannot reach
# DIR because a parent directory is private) a directory under /tmp that DIR/location names.
if [[ -f "$dir/location" ]]; then
    dir=$(cat "$dir/location")
elif [[ $(id -u) -eq 0 ]] && id postgres > /dev/null 2>&1 && ! runuser -u postgres -- test -x "$(dirname "$dir")"; then
    elsewhere=$(mktemp -d /tmp/countersign-pg.XXXXXX)
    chmod 755 "$elsewhere"
    echo "$elsewhere" > "$dir/location"
    echo "the postgres user cannot reach $dir: the cluster lives in $elsewhere" >&2
    dir=$elsewhere
fi
user=countersign
password=countersign

bin_dir() {
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
    if [[ -z "$found" || ! -x "$found/initdb" ]]; then
        echo "installing PostgreSQL (Debian's postgresql package)" >&2
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2; then
            apt-get update -q >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
        fi
        found=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    fi
    echo "$found"
}

# Runs a command as the cluster's owner: `postgres` when we are root, ourselves otherwise.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

url() {
    echo "postgres://$user:$password@127.0.0.1:$(cat "$dir/port")/countersign"
}

start() {
    local bin
    bin=$(bin_dir)
    if [[ $(id -u) -eq 0 ]]; then
        # The owner must reach the directory: every parent has to be searchable.
        chown postgres: "$dir"
    fi
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
        echo "$password" > "$dir/pwfile"
        chmod 600 "$dir/pwfile"
        [[ $(id -u) -eq 0 ]] && chown postgres: "$dir/pwfile"
        as_owner "$bin/initdb" -D "$dir/data" -U "$user" --pwfile="$dir/pwfile" \
            --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 > "$dir/initdb.log"
        rm -f "$dir/pwfile"
    fi
    if as_owner "$bin/pg_ctl" -D "$dir/data" status > /dev/null 2>&1; then
        url
        return
    fi
    # The same port across restarts of one cluster, so that its URL stays valid.
    [[ -s "$dir/port" ]] || free_port > "$dir/port"
    mkdir -p "$dir/sock"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$dir/sock" "$dir/port"
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $(cat "$dir/port") -k $dir/sock -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c max_connections=400" \
        start > /dev/null
    as_owner "$bin/psql" -h "$dir/sock" -p "$(cat "$dir/port")" -U "$user" -d postgres -q -c \
        "SELECT 1 FROM pg_database WHERE datname = 'countersign'" -tA | grep -q 1 ||
        as_owner "$bin/createdb" -h "$dir/sock" -p "$(cat "$dir/port")" -U "$user" countersign
    url
}

stop() {
    local bin
    bin=$(bin_dir)
    if [[ -f "$dir/data/PG_VERSION" ]]; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop > /dev/null 2>&1 || true
    fi
}

case "$command" in
    start) start ;;
    stop) stop ;;
    url) url ;;
    remove)
        stop
        given="${2:-target/pg}"
        [[ "$dir" != "$(cd "$given" && pwd)" ]] && rm -rf "$dir"
        rm -rf "$given"
        ;;
    *) echo "usage: $0 start|stop|url|remove [DIR]" >&2; exit 2 ;;
esac
