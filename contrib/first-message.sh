#!/usr/bin/env bash
# From a fresh clone to a first message, in one command: builds the binaries, starts two local
# accounts, Alice and Bob, each with its own chatd, connects them with an invite code, has Bob
# send Alice a message and shows Alice's side. No server is needed: the demo's daemons share a
# local relay of their own on loopback (127.0.0.1:7421, with its state in the demo directory),
# hosted by whichever of them runs, so your own account and its relay (127.0.0.1:7420) are
# never touched, and stopping the demo stops nothing of yours.
#
#   contrib/first-message.sh            # build (release), then run the demo
#   contrib/first-message.sh --stop     # stop the two demo daemons (builds nothing)
#
# Both daemons keep running afterwards, so you can go on talking (the script prints how). Their
# data and their relay's live in $CHATD_DEMO_DIR (default:
# ${XDG_DATA_HOME:-~/.local/share}/chatd-demo), apart from your own account; the accounts have
# no passphrase, since they are a demo.
#
# Environment: CHATD_BIN_DIR uses binaries already built there instead of building (--stop
# uses them, or the release build's, and never builds);
# CHATD_DEMO_RELAY_ADDR picks the demo relay's address (default 127.0.0.1:7421; tests use a
# free port).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
demo=${CHATD_DEMO_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/chatd-demo}
relay_addr=${CHATD_DEMO_RELAY_ADDR:-127.0.0.1:7421}

stopping=false
if [[ ${1:-} == "--stop" ]]; then
    stopping=true
fi

if [[ -n ${CHATD_BIN_DIR:-} ]]; then
    bin=$CHATD_BIN_DIR
else
    bin=${CARGO_TARGET_DIR:-$root/target}/release
    # Stopping needs the chatctl the demo ran with, not a new build.
    if ! $stopping; then
        echo "==> building chatd and chatctl (release; the first build takes a few minutes)"
        cargo build --release --bins --quiet --manifest-path "$root/Cargo.toml" -p chatd -p chatctl
    fi
fi

alice_socket=$demo/alice/chatd.sock
bob_socket=$demo/bob/chatd.sock

# chatctl for one of the two accounts; it starts that account's chatd when none is running.
as() {
    local who=$1
    shift
    CHATD_BIN="$bin/chatd" \
        CHATCTL_CHATD_ARGS="--data-dir $demo/$who/data --local-relay-dir $demo/local-relay --embedded-relay-addr $relay_addr" \
        "$bin/chatctl" --socket "$demo/$who/chatd.sock" "$@"
}

if $stopping; then
    if [[ ! -x $bin/chatctl ]]; then
        echo "no chatctl in $bin, so no demo daemon to stop (CHATD_BIN_DIR names where the demo's binaries are)" >&2
        exit 1
    fi
    for who in alice bob; do
        pid=$(as "$who" --no-autostart --json status 2>/dev/null |
            sed -n 's/.*"pid": *\([0-9]*\).*/\1/p') || true
        if [[ -n $pid ]]; then
            kill "$pid" && echo "stopped $who's chatd (pid $pid)"
        fi
    done
    exit 0
fi

mkdir -p -m 0700 "$demo"

echo "==> the demo uses its own relay on $relay_addr (state in $demo/local-relay); your own account is not touched"

# Creates the account unless it exists (so running the script twice is fine).
ensure_account() {
    local who=$1 name=$2
    if as "$who" --json status | grep -q '"state": *"no_account"'; then
        as "$who" init --name "$name" --no-passphrase 2>/dev/null
        echo "==> created $name's account"
    else
        echo "==> $name's account exists"
    fi
}

ensure_account alice Alice
ensure_account bob Bob

if ! as bob contact show alice >/dev/null 2>&1; then
    echo "==> Alice makes an invite code; Bob accepts it"
    code=$(as alice invite 2>/dev/null)
    as bob accept "$code" --as alice
fi

echo "==> Bob sends Alice a message and waits until her daemon has it"
as bob send alice "Hello Alice, this is Bob. It is end-to-end encrypted." --wait delivered

echo "==> Alice's conversations and her history with Bob"
as alice conversations
conversation=$(as alice --json conversations | sed -n 's/.*"conversation": *"\([^"]*\)".*/\1/p' | head -n 1)
as alice history "${conversation:-Bob}"

cat <<EOF

Both daemons keep running. Talk on with:
  $bin/chatctl --socket $alice_socket send ${conversation:-Bob} "Hi Bob"
  $bin/chatctl --socket $bob_socket watch
Stop them with: $0 --stop
For your own account: $bin/chatctl init --name YOUR-NAME (README.md, "From a fresh clone to a first message").
EOF
