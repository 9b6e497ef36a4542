#!/usr/bin/env bash
# alternate base/new: run.sh FILTER PAIRS
f=$1; n=${2:-4}
for i in $(seq $n); do
  for v in base new; do
    r=$(/tmp/ab/dispatcher.$v --bench "$f" --noplot 2>&1 | grep -A1 "time:" | head -2 | tr -s ' ' | tr '\n' ' ')
    echo "$i $v $r"
  done
done
