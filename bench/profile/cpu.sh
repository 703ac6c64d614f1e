#!/bin/bash
# CPU per SET of the primary and of the backup started by start.sh, from /proc/PID/stat around 2M SETs of
# redis-benchmark (50 clients, pipeline depth P, default 16), after 500k SETs of warm-up.
#   bash bench/profile/cpu.sh LABEL [P]
set -u
P=${2:-16}; N=2000000
p1=$(pgrep -f "server --listen 127.0.0.1:7601"); p2=$(pgrep -f "server --listen 127.0.0.1:7602")
t() { awk '{print $14+$15}' "/proc/$1/stat"; }
redis-benchmark -p 7601 -t set -c 50 -P "$P" -n 500000 -q >/dev/null 2>&1
a1=$(t "$p1"); a2=$(t "$p2")
r=$(redis-benchmark -p 7601 -t set -c 50 -P "$P" -n $N -q 2>&1 | tr '\r' '\n' | grep "per second" | tail -1)
b1=$(t "$p1"); b2=$(t "$p2")
hz=$(getconf CLK_TCK)
echo "$1 P$P: primary $(( (b1-a1)*1000000/hz / (N/1000) )) ns/SET, backup $(( (b2-a2)*1000000/hz / (N/1000) )) ns/SET ($r)"
