# Not runnable as is: the harness option --idle-poll-us used by the "both" and "bench" arms was a
# temporary build (not kept: no measured effect). The off/broker arms need only rt.sh.
cd /work/main
R=/work/new-s15b/rmq
for pass in 1 2 3; do
for cfg in "off:0:" "broker:0:@idlePollMicros=50" "both:50:@idlePollMicros=50" "bench:50:"; do
  tag=${cfg%%:*}; rest=${cfg#*:}; bp=${rest%%:*}; extra=${rest#*:}
  OUT=/tmp/s15/rt2 RUNS="$tag$pass=$R$extra" BENCH=/work/new-s15b/rmq-bench-p$bp DURATION=8 perf-reports/2026-12-07-plumbing/rt.sh 2>&1 | grep "us/msg"
done; done
