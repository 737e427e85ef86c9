#!/bin/bash
# The service mix at 16 goroutines per node, four contenders interleaved, four rounds
# (docs/benchmarks.md, "What the backplane costs, 2026-12-07"). From bench/:
#   go test -c -o /tmp/mix.test . && bash results/2026-12-07-servicemix-nobp.sh > results/2026-12-07-servicemix-nobp-raw.txt
for r in 1 2 3 4; do
  for c in go-redis-cache strata strata-sync strata-sync-nobp; do
    /tmp/mix.test -test.run '^$' -test.bench "ServiceMix/cache=$c\$/goroutines=16\$" -test.benchtime 200000x -test.timeout 0 | grep '^Benchmark'
  done
done
