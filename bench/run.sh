#!/usr/bin/env bash
# The side-by-side benchmark of Tandem, Redis 7 and Garnet, in one command from a fresh clone:
#
#   bash bench/run.sh                 # full run (about 15 minutes on 2 cores); rewrites docs/benchmarks.md
#   bash bench/run.sh --quick         # short smoke run (a few minutes); prints the table only
#   bash bench/run.sh --quick --write-docs   # smoke run that also writes the docs
#   bash bench/run.sh --rounds 5      # more rounds (the median is reported)
#
# It installs redis-server and redis-tools if missing (apt-get; sudo when not root), builds Tandem and the
# harness in Release (NuGet restores Microsoft.Garnet and ScottPlot), and runs bench/Tandem.Bench, which starts
# and kills every server itself. The table goes to stdout, progress to stderr.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
quick=0
for arg in "$@"; do
  case $arg in
    --quick) quick=1 ;;
    --write-docs|--no-docs) ;;
    --rounds) ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  esac
done

die() { echo "bench/run.sh: $*" >&2; exit 1; }
say() { echo "bench/run.sh: $*" >&2; }

# 1. Tools: Redis 7 (server, redis-benchmark, redis-cli) from Debian, the .NET SDK.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
{ command -v redis-benchmark >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; } || missing+=(redis-tools)
if ((${#missing[@]})); then
  sudo=()
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "${missing[*]} missing, and not root and no sudo to install them: apt-get install -y ${missing[*]}"
    sudo=(sudo)
  fi
  command -v apt-get >/dev/null 2>&1 || die "${missing[*]} missing and no apt-get here: install Redis 7 (server and tools) by hand"
  say "installing ${missing[*]} (apt-get)"
  timeout 600 "${sudo[@]}" apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive timeout 900 "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null \
    || die "apt-get install -y ${missing[*]} failed"
fi
redis_major=$(redis-server --version | sed -n 's/.* v=\([0-9]*\)\..*/\1/p')
[[ ${redis_major:-0} -ge 7 ]] || die "Redis 7 or later is needed; redis-server --version says: $(redis-server --version)"
command -v dotnet >/dev/null 2>&1 || die "the .NET 10 SDK is needed (dotnet not on PATH)"

# 2. Build Tandem's CLI and the harness (the harness project builds src/Tandem.Cli too), Release.
say "building Tandem and bench/Tandem.Bench (Release)"
build_log=$(mktemp)
if ! timeout 1200 dotnet build bench/Tandem.Bench/Tandem.Bench.csproj -c Release -nologo -v q >"$build_log" 2>&1; then
  grep -E "error|Error" "$build_log" | sort -u | head -40 >&2 || true
  rm -f "$build_log"
  die "the build failed (above); run: dotnet build bench/Tandem.Bench/Tandem.Bench.csproj -c Release"
fi
rm -f "$build_log"

# 3. Run. The harness kills its children on exit, Ctrl-C and SIGTERM; the PID file lets this script kill what
# would be left if the harness itself were killed outright.
pidfile=$(mktemp)
cleanup() {
  local pid
  while read -r pid; do
    [[ -n $pid && -r /proc/$pid/cmdline ]] || continue
    if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qE 'redis-server|redis-benchmark|tandem\.dll|Tandem\.Bench\.dll'; then
      kill -9 "$pid" 2>/dev/null || true
    fi
  done <"$pidfile"
  rm -f "$pidfile"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ((quick)); then limit=900; else limit=5400; fi
TANDEM_BENCH_PIDFILE=$pidfile timeout --foreground -k 30 "$limit" \
  dotnet bench/Tandem.Bench/bin/Release/net10.0/Tandem.Bench.dll run --repo "$repo" "$@" || {
  rc=$?
  if ((rc == 124)); then say "the harness did not finish within ${limit} s and was stopped"
  elif ((rc > 128)); then say "the harness was stopped by signal $((rc - 128))"; fi
  exit "$rc"
}
