#!/usr/bin/env bash
# Bounded fuzzing run: fuzz/run.sh TARGET SECONDS [extra libFuzzer flags]
# Needs the nightly toolchain and cargo-fuzz (cargo install cargo-fuzz).
# New inputs go to a scratch corpus; crashes land in fuzz/artifacts/TARGET.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/run.sh TARGET SECONDS}
seconds=${2:?usage: fuzz/run.sh TARGET SECONDS}
shift 2
scratch="target/corpus/$target"
mkdir -p "$scratch" "corpus/$target"
# The committed seeds are read; new finds go to the scratch corpus only.
exec cargo +nightly fuzz run "$target" "$scratch" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=70000 -timeout=10 -rss_limit_mb=2048 "$@"
