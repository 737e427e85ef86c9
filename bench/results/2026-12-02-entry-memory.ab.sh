#!/bin/bash
# The record of how the 2026-12-02 entry-memory figures were taken: test binaries
# hybrid-{before,after}.test and bench-{before,after}.test built with go test -c
# into /tmp/em from the commits before and after; paths are that run's.
# Interleaved A/B: before and after binaries, one run each per round.
cd /tmp/em
rm -f hit-*.txt l1-*.txt mem-*-ab.txt wp-*.txt
for i in 1 2 3 4 5 6; do
  for v in before after; do
    ./hybrid-$v.test -test.run '^$' -test.bench 'HitPath$|HitTags' -test.benchmem -test.count 1 >> hit-$v.txt 2>&1
    ./hybrid-$v.test -test.run '^$' -test.bench 'WritePath' -test.benchmem -test.count 1 >> wp-$v.txt 2>&1
    (cd /work/wt-entrymem/bench && /tmp/em/bench-$v.test -test.run '^$' -test.bench 'L1Hit$/cache=(ristretto|strata-tryget|strata-getorset)$' -test.benchmem -test.count 1 >> /tmp/em/l1-$v.txt 2>&1)
    (cd /work/wt-entrymem/bench && /tmp/em/bench-$v.test -test.run '^$' -test.bench 'MemoryPerEntry' -test.benchtime 100x -test.count 1 >> /tmp/em/mem-$v-ab.txt 2>&1)
  done
done
echo finished > ab.done
