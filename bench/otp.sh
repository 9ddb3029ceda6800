#!/usr/bin/env bash
# OTP core throughput: `totpd otp --window 1000000` against
# `oathtool --totp -w 1000000`, timed side by side with hyperfine, then the
# criterion benchmark of codes per second per algorithm.
#
#   bench/otp.sh [--quick]
#
# Both commands are single-threaded and run with output discarded, so the
# figure is one core's code generation plus formatting. Wall-clock time
# suffers when other work shares the machine, so the CPU time (user +
# system) each command used is reported beside it. --quick
# runs fewer hyperfine runs and shorter criterion measurements. Raw results
# go to bench/out/ (not committed); a Markdown summary for BENCHMARKS.md is
# printed at the end.
set -euo pipefail

cd "$(dirname "$0")/.."
quick=false
[[ "${1:-}" == "--quick" ]] && quick=true

need() {
  local tool=$1 package=$2
  command -v "$tool" >/dev/null && return
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "installing $package" >&2
    apt-get install -y -qq "$package" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$package" >/dev/null; }
  fi
  command -v "$tool" >/dev/null || { echo "$tool not found: apt-get install $package" >&2; exit 2; }
}
need hyperfine hyperfine
need oathtool oathtool

echo "== building totpd (release)" >&2
cargo build --release --quiet -p totpd
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
totpd="$target_dir/release/totpd"

out=bench/out
mkdir -p "$out"
# RFC 6238's SHA-1 seed in base32; a test key, not a secret.
secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ
window=1000000
totpd_cmd="$totpd otp --secret $secret --at 0 --window $window"
oath_cmd="oathtool --totp -b -N @0 -w $window $secret"

# Same codes, same order: check before timing.
if ! cmp -s <($totpd otp --secret "$secret" --at 0 --window 1000) \
  <(oathtool --totp -b -N @0 -w 999 "$secret"); then
  echo "totpd and oathtool disagree on the first 1000 codes" >&2
  exit 1
fi

runs=20
$quick && runs=5
echo "== hyperfine ($runs runs each)" >&2
hyperfine -N --warmup 1 --runs "$runs" --export-json "$out/otp-window.json" \
  -n "totpd otp --window $window" "$totpd_cmd" \
  -n "oathtool --totp -w $window" "$oath_cmd"

echo "== cargo bench -p totpd-otp" >&2
criterion_args=()
$quick && criterion_args=(--warm-up-time 1 --measurement-time 2)
cargo bench --quiet -p totpd-otp --bench codes -- "${criterion_args[@]}" | tee "$out/otp-criterion.txt"

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)
python3 - "$out/otp-window.json" "$out/otp-criterion.txt" "$window" "$(nproc)" "$cpu" \
  "$totpd_cmd" "$oath_cmd" "$(oathtool --version | head -1)" "$(rustc --version)" <<'EOF'
import json, re, sys

hyperfine_json, criterion_txt, window, nproc, cpu, totpd_cmd, oath_cmd, oath_version, rustc = sys.argv[1:]
window = int(window)
results = {r["command"]: r for r in json.load(open(hyperfine_json))["results"]}
totpd = results[f"totpd otp --window {window}"]
oath = results[f"oathtool --totp -w {window}"]
totpd_rate = window / totpd["mean"]
oath_rate = (window + 1) / oath["mean"]  # oathtool -w N prints N+1 codes

print()
print(f"Machine: {nproc} CPUs, {cpu}; {rustc}; {oath_version}.")
print()
print("| command | codes | wall mean ± σ | codes/s (wall) | CPU (user+sys) | codes per CPU-second |")
print("|---|---:|---:|---:|---:|---:|")
cpu_rate = {}
for name, r, codes, rate in [("totpd", totpd, window, totpd_rate), ("oathtool", oath, window + 1, oath_rate)]:
    cpu = r["user"] + r["system"]
    cpu_rate[name] = codes / cpu
    print(
        f"| `{r['command']}` | {codes:,} | {r['mean'] * 1000:.0f} ± {r['stddev'] * 1000:.0f} ms "
        f"| {rate / 1e6:.2f} M | {cpu * 1000:.0f} ms | {cpu_rate[name] / 1e6:.2f} M |"
    )
print()
print(
    f"totpd: {totpd_rate / oath_rate:.1f}x oathtool's throughput by wall clock, "
    f"{cpu_rate['totpd'] / cpu_rate['oathtool']:.1f}x by CPU time (target: at least 2x)."
)
print()
print("Exact commands:")
print(f"- `{totpd_cmd}`")
print(f"- `{oath_cmd}`")
print()
print("Criterion (`cargo bench -p totpd-otp`), codes per second, median:")
print()
print("| benchmark | time per code | codes/s |")
print("|---|---:|---:|")
text = open(criterion_txt).read()
pattern = re.compile(
    r"^(codes/\S+)\s+time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]\s*\n\s+thrpt:\s+\[\S+ \S+ (\S+) (\S+)",
    re.M,
)
for name, t, t_unit, rate, rate_unit in pattern.findall(text):
    print(f"| {name} | {t} {t_unit} | {rate} {rate_unit.replace('elem', 'codes')} |")
EOF
