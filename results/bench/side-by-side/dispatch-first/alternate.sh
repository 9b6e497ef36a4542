#!/usr/bin/env bash
# alternate.sh FILTER PAIRS - run one criterion benchmark of two builds of
# benches/dispatcher.rs one after the other, PAIRS times: /tmp/ab/dispatcher.base
# (the code before) and /tmp/ab/dispatcher.new (after), copied from
# `cargo bench --bench dispatcher --no-run`'s executable. One line per run:
# pair, build, the filter, criterion's time and throughput estimates.
# (The logs final-run*.txt were made before the filter was printed: their blocks
# follow the order given in README.md.)
f=$1; n=${2:-4}
for i in $(seq "$n"); do
  for v in base new; do
    r=$(/tmp/ab/dispatcher.$v --bench "$f" --noplot 2>&1 | grep -A1 "time:" | head -2 | tr -s ' ' | tr '\n' ' ')
    echo "$i $v $f $r"
  done
done
