#!/usr/bin/env bash
# The service mix of 2026-12-06 (docs/benchmarks.md): every contender at every goroutine
# count, 200,000 operations after as many of warm-up, the contenders interleaved (one
# process per contender and round) so that each round sees the same machine.
# Run from bench/: bash results/2026-12-06-servicemix.sh > results/2026-12-06-servicemix-raw.txt
set -euo pipefail
go test -c -o /tmp/bench-svc.test .
for round in 1 2 3; do
	for c in go-redis-cache strata strata-sync strata-sync-novalues strata-sync-s2 eko-chain; do
		/tmp/bench-svc.test -test.run '^$' -test.bench "ServiceMix/cache=$c\$/" -test.benchtime 200000x -test.timeout 0 | grep -v '^PASS$'
	done
done
