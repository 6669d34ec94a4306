#!/usr/bin/env bash
# The Windows binaries, run for real under wine: cross-builds chatd.exe, chatctl.exe and
# chat-relay.exe (x86_64-pc-windows-gnu), builds the test-only bcryptprimitives.dll stand-in
# (bcryptprimitives.c beside this script says why), sets up a throwaway WINEPREFIX and runs a
# scripted scenario against a Linux chat-relay and a Linux chatd on loopback:
#
#   1. chat-relay.exe serves /healthz with --ephemeral;
#   2. chatd.exe serves its named pipe; chatctl.exe drives it: init, whoami, and status piped
#      through cat (which must end: the daemon holds none of chatctl's handles);
#   3. the Windows and the Linux account message each other both ways through the Linux relay;
#   4. chatd.exe is stopped and started again on its data: the history is still there;
#   5. chatctl.exe autostarts chatd.exe (next to it) on another pipe, `status | cat` ends while
#      that daemon keeps running, and the daemon is stopped.
#
# Every step checks what it got and every wait is bounded; the first failure ends the run
# with the step, what was expected, and the daemons' logs. Headless: no X display, no wine
# debug output. `bash tests/wine/scenario.sh` from anywhere in a clone; needs wine64 (Debian's
# `wine64`), MinGW (`gcc-mingw-w64-x86-64`), the x86_64-pc-windows-gnu Rust target, python3.
#
# What wine cannot show: that a second chatd.exe on the same pipe refuses to start (wine does
# not enforce FILE_FLAG_FIRST_PIPE_INSTANCE as Windows does) and that the pipe's DACL keeps
# other users out (wine runs everything as one user and does not check pipe DACLs). Those stay
# documented, untested claims (chatd/src/rpc/pipe.rs).
set -euo pipefail

readonly TARGET=x86_64-pc-windows-gnu
# How long one wine command may take (a cold wine start under load takes a few seconds).
readonly STEP_TIMEOUT=${CHATD_WINE_STEP_TIMEOUT:-120}
# How long a condition may take to come true.
readonly PATIENCE=${CHATD_WINE_PATIENCE:-60}

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$PWD
target_dir=${CARGO_TARGET_DIR:-$root/target}

say() { printf 'wine scenario: %s\n' "$*"; }

fail() {
    printf '\nwine scenario: FAILED: %s\n' "$*" >&2
    exit 1
}

# --- Tools ---------------------------------------------------------------------------------

find_tool() {
    local name
    for name in "$@"; do
        if command -v "$name" >/dev/null 2>&1; then
            command -v "$name"
            return
        fi
        if [[ -x /usr/lib/wine/$name ]]; then
            echo "/usr/lib/wine/$name"
            return
        fi
    done
    fail "none of $* found: install Debian's wine64 package"
}
WINE=$(find_tool wine64 wine)
WINESERVER=$(find_tool wineserver)
readonly WINE WINESERVER
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 ||
    fail "x86_64-w64-mingw32-gcc not found: install Debian's gcc-mingw-w64-x86-64 package"
command -v python3 >/dev/null 2>&1 || fail "python3 not found"

# --- Build ---------------------------------------------------------------------------------

# Debug builds: the scenario does nothing heavy (Argon2id runs with test parameters), and the
# Linux debug binaries are already there after the test suite. CHATD_WINE_WINDOWS_BIN and
# CHATD_WINE_LINUX_BIN name directories of binaries built already, and skip the builds.
if [[ -n ${CHATD_WINE_WINDOWS_BIN:-} ]]; then
    windows_bin=$CHATD_WINE_WINDOWS_BIN
else
    say "cross-building chatd.exe, chatctl.exe, chat-relay.exe ($TARGET, debug)"
    cargo build --locked --target "$TARGET" -p chatd -p chatctl -p chat-relay \
        --bin chatd --bin chatctl --bin chat-relay
    windows_bin=$target_dir/$TARGET/debug
fi
if [[ -n ${CHATD_WINE_LINUX_BIN:-} ]]; then
    linux_bin=$CHATD_WINE_LINUX_BIN
else
    # The whole workspace's binaries, as `cargo test --workspace` builds them: building three
    # packages alone would resolve other features and rebuild much of the dependency tree.
    say "building the Linux binaries"
    cargo build --locked --workspace --bins
    linux_bin=$target_dir/debug
fi
for program in "$windows_bin"/{chatd,chatctl,chat-relay}.exe "$linux_bin"/{chatd,chatctl,chat-relay}; do
    [[ -x $program ]] || fail "$program is missing"
done

# --- A throwaway world ---------------------------------------------------------------------

work=$(mktemp -d "${TMPDIR:-/tmp}/chatd-wine.XXXXXX")
chmod 700 "$work"
linux_pids=()
succeeded=false

cleanup() {
    local status=$?
    set +e
    for pid in "${linux_pids[@]}"; do
        kill "$pid" 2>/dev/null
    done
    # Ends every Windows process of the prefix (the daemons included), then waits for it.
    if [[ -d $work/prefix ]]; then
        WINEPREFIX=$work/prefix "$WINESERVER" -k 2>/dev/null
        WINEPREFIX=$work/prefix timeout 30 "$WINESERVER" -w 2>/dev/null
    fi
    for pid in "${linux_pids[@]}"; do
        wait "$pid" 2>/dev/null
    done
    if [[ $succeeded != true ]]; then
        local log
        for log in "$work"/*.log; do
            [[ -f $log ]] || continue
            printf '\n--- %s (last 40 lines) ---\n' "${log##*/}" >&2
            tail -n 40 "$log" >&2
        done
        ((status != 0)) || status=1
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'fail "interrupted"' INT TERM

# Nothing from the caller's environment steers the binaries, and wine stays headless and quiet.
unset DISPLAY WAYLAND_DISPLAY CHATD_SOCKET CHATD_BIN CHATCTL_CHATD_ARGS CHATD_DATA_DIR \
    CHATD_RELAY CHATD_PASSPHRASE_FILE CHATD_HOST_RELAY
export WINEPREFIX=$work/prefix
export WINEDEBUG=-all
# No Mono or Gecko installer dialogs when the prefix is made.
export WINEDLLOVERRIDES="mscoree,mshtml="
export RUST_LOG=info

# The Windows binaries and the stand-in DLL in one directory: Windows looks for DLLs next to
# the executable first, and chatctl.exe finds chatd.exe there for autostart.
bin=$work/bin
mkdir "$bin"
cp "$windows_bin/chatd.exe" "$windows_bin/chatctl.exe" "$windows_bin/chat-relay.exe" "$bin/"
x86_64-w64-mingw32-gcc -shared -O2 -Wall -Wextra -Werror -o "$bin/bcryptprimitives.dll" \
    tests/wine/bcryptprimitives.c -ladvapi32

say "making the wine prefix"
timeout "$STEP_TIMEOUT" "$WINE" wineboot --init >"$work/wineboot.log" 2>&1 ||
    fail "wineboot --init failed or took over ${STEP_TIMEOUT}s"
timeout "$STEP_TIMEOUT" "$WINESERVER" -w || fail "wineboot did not settle"

# --- Helpers -------------------------------------------------------------------------------

# Runs a Windows program (bounded); its output goes where the caller sends it.
win() {
    timeout "$STEP_TIMEOUT" "$WINE" "$@"
}

# A free TCP port on loopback.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Field $1 of the JSON object on stdin.
json_field() {
    python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# `GET /healthz` on 127.0.0.1:$1 answers 200.
healthy() {
    local answer
    answer=$(
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf 'GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n' >&3
        timeout 5 head -n 1 <&3
    ) 2>/dev/null || return 1
    [[ $answer == "HTTP/1.1 200"* ]]
}

# wait_until WHAT COMMAND...: runs COMMAND until it succeeds, for at most $PATIENCE seconds.
wait_until() {
    local what=$1
    shift
    local deadline=$((SECONDS + PATIENCE))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || fail "timed out after ${PATIENCE}s waiting for $what"
        sleep 0.2
    done
}

# chatctl.exe on pipe $1, never autostarting; the rest are its arguments.
wctl() {
    local pipe=$1
    shift
    win "$bin/chatctl.exe" --no-autostart --socket "$pipe" "$@"
}

# The Linux chatctl on the Linux daemon's socket.
lctl() {
    timeout "$STEP_TIMEOUT" "$linux_bin/chatctl" --no-autostart --socket "$linux_socket" "$@"
}

# Runs `chatctl.exe ARGS | cat` and prints what came through cat. Fails if the pipeline does
# not end: a daemon that chatctl started and that kept chatctl's stdout keeps cat waiting.
piped_through_cat() {
    local out=$work/piped.out
    # shellcheck disable=SC2016 # Expanded by the inner bash, from its own arguments.
    if ! timeout "$PATIENCE" bash -c 'set -o pipefail; "$@" | cat >"$0"' "$out" "$WINE" "$bin/chatctl.exe" "$@"; then
        fail "\`chatctl.exe $* | cat\` did not end within ${PATIENCE}s (or failed): the daemon holds chatctl's handles"
    fi
    cat "$out"
}

# The Windows process id of the daemon on pipe $1.
daemon_pid() {
    wctl "$1" --json status | json_field pid
}

# ------------------------------------------------------------------------------------------
# STOPPING A WINDOWS DAEMON: `chatctl daemon stop` over the named pipe (the `daemon.stop` RPC;
# a Windows daemon whose pipe is gone cannot be stopped this way, only with taskkill).
stop_windows_daemon() {
    local pipe=$1
    wctl "$pipe" daemon stop >>"$work/stop.log" 2>&1 || fail "chatctl.exe daemon stop failed on $pipe"
    wait_until "the daemon on $pipe to go away" pipe_unreachable "$pipe"
}
# ------------------------------------------------------------------------------------------

# chatctl.exe says the daemon on pipe $1 is unreachable (exit code 3), as after a stop.
pipe_unreachable() {
    local code=0
    wctl "$1" status >/dev/null 2>&1 || code=$?
    ((code == 3))
}

# history_shows TEXT ALIAS CTL...: whether CTL's history with ALIAS has a message TEXT (CTL is
# `lctl` or `wctl PIPE`).
history_shows() {
    local text=$1 alias=$2
    shift 2
    "$@" --json history "$alias" 2>/dev/null | grep -qF -- "\"$text\""
}

# add_contact ALIAS ADDRESS CTL...: adds ADDRESS as ALIAS and prints the alias it is known by.
# The other side's introduction may have added it first, under its display name: then chatctl
# refuses the second add and that contact is used.
add_contact() {
    local alias=$1 address=$2 output
    shift 2
    output=$("$@" contact add "$alias" "$address" 2>&1) ||
        [[ $output == *"already the contact"* ]] ||
        fail "contact add $alias failed: $output"
    "$@" --json contact list | python3 -c '
import json, sys
found = [c["alias"] for c in json.load(sys.stdin)["contacts"] if c["address"] == sys.argv[1]]
if not found:
    sys.exit("no contact has address " + sys.argv[1])
print(found[0])' "$address" || fail "contact $alias ($address) is not in the contact list"
}

# connected CTL...: whether CTL's daemon is connected to its relay.
connected() {
    [[ $("$@" --json status 2>/dev/null | json_field connection) == connected ]]
}

# --- 1. chat-relay.exe ---------------------------------------------------------------------

say "1. chat-relay.exe --ephemeral serves /healthz"
win_relay_port=$(free_port)
"$WINE" "$bin/chat-relay.exe" --listen "127.0.0.1:$win_relay_port" --ephemeral \
    >"$work/chat-relay-exe.log" 2>&1 &
win_relay_pid=$!
linux_pids+=("$win_relay_pid")
wait_until "chat-relay.exe to answer /healthz" healthy "$win_relay_port"
kill "$win_relay_pid"

# --- The Linux side ------------------------------------------------------------------------

relay_port=$(free_port)
relay_url=ws://127.0.0.1:$relay_port/v1
say "starting the Linux chat-relay on 127.0.0.1:$relay_port"
"$linux_bin/chat-relay" --listen "127.0.0.1:$relay_port" --ephemeral >"$work/linux-relay.log" 2>&1 &
linux_pids+=($!)
wait_until "the Linux relay" healthy "$relay_port"

# Argon2id with test parameters: the scenario is about the platform, not the KDF.
readonly KDF="--kdf-memory-kib 64 --kdf-iterations 1 --kdf-parallelism 1"
linux_socket=$work/linux-run/chatd.sock
mkdir -m 700 "$work/linux-run"
# shellcheck disable=SC2086 # KDF is split into words on purpose.
"$linux_bin/chatd" --socket "$linux_socket" --data-dir "$work/linux-data" --relay "$relay_url" \
    $KDF >"$work/linux-chatd.log" 2>&1 &
linux_pids+=($!)
wait_until "the Linux chatd" lctl status
lctl init --name Tux --no-passphrase >/dev/null || fail "Linux chatctl init failed"
linux_address=$(lctl --json whoami | json_field address)
[[ $linux_address == chat1* ]] || fail "the Linux whoami gave no address: $linux_address"

# --- 2. chatd.exe on its named pipe, driven by chatctl.exe ---------------------------------

pipe='\\.\pipe\chatd-wine-scenario'
win_data='C:\chatd-scenario\data'
start_windows_daemon() {
    # shellcheck disable=SC2086 # KDF is split into words on purpose.
    "$WINE" "$bin/chatd.exe" --socket "$pipe" --data-dir "$win_data" --relay "$relay_url" $KDF \
        >>"$work/chatd-exe.log" 2>&1 &
    wait_until "chatd.exe to serve $pipe" wctl "$pipe" status
}
say "2. chatd.exe serves $pipe; chatctl.exe init, whoami, status | cat"
start_windows_daemon
init=$(wctl "$pipe" init --name Win --no-passphrase) || fail "chatctl.exe init failed"
win_address=$(wctl "$pipe" --json whoami | json_field address)
[[ $win_address == chat1* ]] || fail "chatctl.exe whoami gave no address: $win_address"
[[ $init == *"$win_address"* ]] || fail "chatctl.exe init did not print the address: $init"
[[ $(wctl "$pipe" whoami) == *"$win_address"* ]] || fail "chatctl.exe whoami (text) lacks the address"
status=$(piped_through_cat --no-autostart --socket "$pipe" --json status)
[[ $(json_field state <<<"$status") == unlocked ]] || fail "status through cat: $status"
wait_until "chatd.exe to connect to the relay" connected wctl "$pipe"
wait_until "the Linux chatd to connect to the relay" connected lctl

# --- 3. Messages both ways -----------------------------------------------------------------

say "3. the Windows and the Linux account message each other through the Linux relay"
tux=$(add_contact tux "$linux_address" wctl "$pipe")
win=$(add_contact win "$win_address" lctl)
sent=$(wctl "$pipe" send "$tux" "hello from windows" --wait delivered) ||
    fail "chatctl.exe send --wait delivered failed: $sent"
[[ $sent == delivered* ]] || fail "chatctl.exe send did not report delivery: $sent"
wait_until "the Linux account to show Windows' message" \
    history_shows "hello from windows" "$win" lctl
sent=$(lctl send "$win" "hello from linux" --wait delivered) || fail "Linux send failed: $sent"
[[ $sent == delivered* ]] || fail "Linux send did not report delivery: $sent"
wait_until "the Windows account to show Linux's message" \
    history_shows "hello from linux" "$tux" wctl "$pipe"

# --- 4. Stop and start again ---------------------------------------------------------------

say "4. chatd.exe stops, starts again on its data, and still has the history"
stop_windows_daemon "$pipe"
start_windows_daemon
wait_until "chatd.exe to unlock its account again" connected wctl "$pipe"
history_shows "hello from linux" "$tux" wctl "$pipe" || fail "chatd.exe lost the history over a restart"
history_shows "hello from windows" "$tux" wctl "$pipe" || fail "chatd.exe lost its sent message"
stop_windows_daemon "$pipe"

# --- 5. Autostart --------------------------------------------------------------------------

auto_pipe='\\.\pipe\chatd-wine-autostart'
say "5. chatctl.exe autostarts chatd.exe on $auto_pipe; status | cat ends, the daemon stays"
export CHATCTL_CHATD_ARGS="--data-dir C:\\chatd-scenario\\auto --relay $relay_url $KDF"
status=$(piped_through_cat --socket "$auto_pipe" --json status)
unset CHATCTL_CHATD_ARGS
[[ $(json_field state <<<"$status") == no_account ]] || fail "autostarted status: $status"
first_pid=$(json_field pid <<<"$status")
[[ $(daemon_pid "$auto_pipe") == "$first_pid" ]] ||
    fail "the autostarted daemon did not keep running after the pipeline ended"
stop_windows_daemon "$auto_pipe"

succeeded=true
say "passed"
