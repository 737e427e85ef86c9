#!/bin/bash
# usage: bash 2026-12-07c-coalesce-abc-g.sh ROUNDS GOROUTINES > raw.txt
# The binaries (go test -c of bench/):
#   /tmp/mix-old.test  at 5292a44 (before coalescing)
#   /tmp/mix-k1.test   at b093352 (one call of a kind in flight: coalesceSlots = 1, as shipped)
#   /tmp/mix-k2.test   two slots (the commit after b093352 with coalesceSlots = 2 in hybrid/coalesce.go)
# e.g. git worktree add /tmp/old 5292a44 && (cd /tmp/old/bench && go test -c -o /tmp/mix-old.test .)
# then: benchstat -col /v <output>
rounds=$1; g=$2
for r in $(seq $rounds); do
  for v in old k1 k2; do
    /tmp/mix-$v.test -test.run '^$' -test.bench "ServiceMix/cache=(strata-sync|strata)\$/goroutines=$g\$" -test.benchtime 200000x -test.timeout 0 | grep '^Benchmark' | sed "s/cache=/v=$v\/cache=/"
  done
  /tmp/mix-k2.test -test.run '^$' -test.bench "ServiceMix/cache=go-redis-cache\$/goroutines=$g\$" -test.benchtime 200000x -test.timeout 0 | grep '^Benchmark' | sed "s/cache=/v=peer\/cache=/"
done
