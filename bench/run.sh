#!/usr/bin/env bash
# Runs Strata's benchmark suite against its peers and summarises it with
# benchstat. One go test process; run it on an idle machine.
#
#   bench/run.sh                      # -count=8 -benchtime=1s, every benchmark
#   COUNT=3 BENCH='L1Hit$' bench/run.sh
#   REDIS_ADDR=127.0.0.1:7000 bench/run.sh   # an existing Redis instead of a
#                                            # redis-server started per benchmark
#
# Environment: COUNT (8), BENCH (the -bench regexp, "."), BENCHTIME (1s),
# OUT (the raw output, results/raw-<UTC time>.txt). The benchstat tables go to
# standard output and beside OUT as <OUT without .txt>.benchstat.txt.
# SKIP_RUN=1 OUT=file only summarises an existing raw output.
#
# The quick mode that CI runs (scripts/test.sh), about a minute:
#   cd bench && go test -run '^$' -bench . -benchtime=100x -count=1 ./...
set -euo pipefail
cd "$(dirname "$0")"

COUNT=${COUNT:-8}
BENCH=${BENCH:-.}
BENCHTIME=${BENCHTIME:-1s}
OUT=${OUT:-results/raw-$(date -u +%Y%m%dT%H%M%SZ).txt}
SUMMARY=${OUT%.txt}.benchstat.txt
mkdir -p "$(dirname "$OUT")"

# benchstat: on PATH, in GOPATH/bin, installed there, or else go run.
benchstat=(benchstat)
if ! command -v benchstat >/dev/null; then
	gobin=$(go env GOBIN)
	gobin=${gobin:-$(go env GOPATH)/bin}
	if [ -x "$gobin/benchstat" ] || go install golang.org/x/perf/cmd/benchstat@latest; then
		benchstat=("$gobin/benchstat")
	else
		benchstat=(go run golang.org/x/perf/cmd/benchstat@latest)
	fi
fi

if [ -z "${SKIP_RUN:-}" ]; then
	echo "# go test -run '^\$' -bench '$BENCH' -benchtime $BENCHTIME -count $COUNT (raw output: $OUT)" >&2
	go test -run '^$' -bench "$BENCH" -benchtime "$BENCHTIME" -count "$COUNT" -timeout 0 . | tee "$OUT"
fi

{
	echo "## All benchmarks"
	echo
	"${benchstat[@]}" "$OUT"
	# The spec's ratios (section 6): Strata against its floor, as columns
	# with "vs base". A table is empty when its benchmarks were not run.
	echo
	echo "## L1 hit: Strata vs raw ristretto Get (the floor; goal: TryGet within 1.3x, GetOrSet within 1.5x)"
	echo
	"${benchstat[@]}" -filter '.name:(L1Hit OR L1HitParallel)' \
		-col '/cache@(ristretto strata-tryget strata-getorset)' "$OUT" || true
	echo
	echo "## L2 hit: Strata vs raw GET + msgpack decode (goal: within 1.2x, p50 and p99)"
	echo
	"${benchstat[@]}" -filter '.name:L2Hit' \
		-col '/cache@(redis-get-decode strata)' "$OUT" || true
	echo
	echo "## Service mix: Strata vs go-redis/cache (goal: ops/s >= 1.0x, p99 no worse, stale-frac < 0.01)"
	echo
	"${benchstat[@]}" -filter '.name:ServiceMix' \
		-col '/cache@(go-redis-cache strata strata-sync eko-chain)' "$OUT" || true
	echo
	echo "## Memory per entry: Strata vs raw ristretto"
	echo
	"${benchstat[@]}" -filter '.name:MemoryPerEntry .unit:(B/entry OR overhead-B/entry)' \
		-col '/cache@(ristretto strata otter)' "$OUT" || true
} | tee "$SUMMARY"
