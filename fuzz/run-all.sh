#!/usr/bin/env bash
# Runs every fuzz target of totpd-otp for SECONDS each (default 60).
#
#   fuzz/run-all.sh [SECONDS]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). cargo-fuzz builds with
# AddressSanitizer, a nightly-only flag; RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept it. Each target starts from the committed seeds in
# fuzz/seeds/TARGET (inputs from the test corpus) plus what earlier runs
# found in fuzz/corpus/TARGET (kept between runs, not committed), and uses
# otpauth.dict. A crash stops
# the script with a non-zero status and leaves the input in
# fuzz/artifacts/TARGET/; turn it into a regression test in
# crates/totpd-otp/tests/it before fixing it.
set -euo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [SECONDS]  (a positive whole number, default 60)" >&2
  exit 2
fi
cd "$(dirname "$0")"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
  exit 2
fi

export RUSTC_BOOTSTRAP=1
targets=$(cargo fuzz list)
for target in $targets; do
  echo "=== fuzz $target for ${seconds}s"
  mkdir -p "corpus/$target"
  seeds=()
  [[ -d "seeds/$target" ]] && seeds=("seeds/$target")
  # A target with a grammar of its own (create_body: JSON) has TARGET.dict.
  dict=otpauth.dict
  [[ -f "$target.dict" ]] && dict="$target.dict"
  cargo fuzz run "$target" "corpus/$target" "${seeds[@]}" -- \
    -max_total_time="$seconds" \
    -dict="$dict" \
    -print_final_stats=1
done
echo "=== all fuzz targets ran ${seconds}s without a crash: $(echo $targets)"
