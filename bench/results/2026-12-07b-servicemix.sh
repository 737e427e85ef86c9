#!/bin/bash
# The service mix at 16 goroutines per node, four contenders interleaved, four rounds
# (docs/benchmarks.md, "Where the goals stand, 2026-12-07 (later session)"). From bench/:
#   go test -c -o /tmp/mix.test . && bash results/2026-12-07b-servicemix.sh > results/2026-12-07b-servicemix-raw.txt
#   benchstat -col /cache results/2026-12-07b-servicemix-raw.txt
# Command time per Redis command (INFO commandstats) of one contender, on a server of your own:
#   redis-server --port 16399 --save '' --daemonize yes; redis-cli -p 16399 config resetstat
#   REDIS_ADDR=127.0.0.1:16399 /tmp/mix.test -test.run '^$' -test.bench 'ServiceMix/cache=strata-sync$/goroutines=16$' -test.benchtime 200000x
#   redis-cli -p 16399 info commandstats
for r in 1 2 3 4; do
  for c in go-redis-cache strata strata-sync eko-chain; do
    /tmp/mix.test -test.run '^$' -test.bench "ServiceMix/cache=$c\$/goroutines=16\$" -test.benchtime 200000x -test.timeout 0 | grep '^Benchmark'
  done
done
