#!/bin/bash
# Interleaved A/B of two bench test binaries (go test -c of bench/ on two commits), each
# benchmark regexp in turn, old then new, for the given rounds; the sub-benchmark name gets
# v=old or v=new, for benchstat -col /v.
# usage: [BENCHTIME=200000x] [FLAGS=-test.benchmem] ab.sh old.test new.test rounds benchregex...
old=$1; new=$2; rounds=$3; shift 3
for r in $(seq $rounds); do
  for re in "$@"; do
    for v in old new; do
      bin=$old; [ $v = new ] && bin=$new
      $bin -test.run '^$' -test.bench "$re" -test.benchtime ${BENCHTIME:-200000x} ${FLAGS:-} -test.timeout 0 | grep '^Benchmark' | sed "s/^Benchmark/Benchmark/;s/cache=/v=$v\/cache=/"
    done
  done
done
