#!/usr/bin/env bash
# Runs chatd's fuzz targets (fuzz/README.md) one after another, each for a bounded time, and
# prints how many inputs each ran. Needs a nightly toolchain and cargo-fuzz:
#   rustup toolchain install nightly && cargo install cargo-fuzz --locked
#
# Usage: fuzz/run.sh [--update-corpus] [TARGET...]     (default: every target)
#   FUZZ_SECONDS    seconds per target (default 60)
#   FUZZ_TOOLCHAIN  the nightly toolchain to use (default nightly)
#   FUZZ_CMIN_ARGS  extra libFuzzer flags for --update-corpus's cmin, e.g. -use_counters=0 to keep
#                   one input per edge rather than per hit-count bucket (a smaller corpus)
#   CARGO_TARGET_DIR  where to build (default fuzz/target)
#
# New inputs go to fuzz/work/<target>/ (not committed); the committed corpus fuzz/corpus/<target>/
# is read only. --update-corpus merges what a run found into the committed corpus, minimised with
# `cargo fuzz cmin`. A crash stops the script with the input under fuzz/artifacts/<target>/:
# minimise it (`cargo +nightly fuzz tmin <target> <input>`), commit it under
# fuzz/regressions/<target>/ (the replay test runs it on stable), and fix the bug.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
readonly SECONDS_PER_TARGET="${FUZZ_SECONDS:-60}"
readonly TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

update=false
if [[ "${1:-}" == "--update-corpus" ]]; then
    update=true
    shift
fi

fuzz() {
    cargo "+$TOOLCHAIN" fuzz "$@"
}

if ! fuzz --version >/dev/null 2>&1; then
    echo "error: cargo +$TOOLCHAIN fuzz is not available; install it with" >&2
    echo "  rustup toolchain install $TOOLCHAIN && cargo install cargo-fuzz --locked" >&2
    exit 1
fi

if (($# > 0)); then
    targets=("$@")
else
    mapfile -t targets < <(fuzz list)
fi

summary=()
for target in "${targets[@]}"; do
    mkdir -p "work/$target" "corpus/$target"
    log="work/$target.log"
    printf '\n==> %s (%ss)\n' "$target" "$SECONDS_PER_TARGET"
    # Debug assertions on (overflow checks included), AddressSanitizer (cargo-fuzz's default);
    # one process (no -jobs/-workers), as the targets run one after another.
    if ! fuzz run --debug-assertions "$target" "work/$target" "corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -print_final_stats=1 2>&1 | tee "$log" | grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|ERROR|panicked|SUMMARY'; then
        :
    fi
    if grep -qE '^==[0-9]+==ERROR|panicked at|deadly signal|Test unit written' "$log"; then
        echo "crash in $target: see $log and fuzz/artifacts/$target/" >&2
        exit 1
    fi
    runs=$(grep -oE '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 || true)
    summary+=("$(printf '%-16s %s' "$target" "${runs:-no summary (see $log)}")")
    if $update; then
        cp -n "work/$target"/* "corpus/$target"/ 2>/dev/null || true
        # shellcheck disable=SC2086 # FUZZ_CMIN_ARGS is split into flags on purpose.
        fuzz cmin --debug-assertions "$target" "corpus/$target" -- ${FUZZ_CMIN_ARGS:-}
    fi
done

printf '\nExecutions per target:\n'
printf '%s\n' "${summary[@]}"
