#!/bin/bash
# A state transfer by hand: a coordinator (127.0.0.1:7710) and one server (7711) loaded with N random keys of
# 256 B (redis-benchmark, 20 clients, pipeline 32), then a second server (7712) starts; prints the seconds until
# VS.STATUS shows view 2 acknowledged (the new backup synced), and from view 2's start (the transfer itself), or
# gives up after 30 s; then the view reached.
# A view above 2 means the new backup was dropped and named again during its transfer.
#   bash bench/profile/transfer.sh src/Tandem.Cli/bin/Release/net10.0 1000000
set -u
B=${1:?usage: transfer.sh BINDIR [N]}; N=${2:-1000000}
D=/tmp/tandem-transfer
pkill -f "tandem.dll (coordinator|server) --listen 127.0.0.1:771" 2>/dev/null; sleep 0.5
rm -rf "$D"; mkdir -p "$D"
setsid nohup dotnet "$B/tandem.dll" coordinator --listen 127.0.0.1:7710 --data-dir "$D/c" >"$D/c.log" 2>&1 </dev/null &
sleep 1.5
setsid nohup dotnet "$B/tandem.dll" server --listen 127.0.0.1:7711 --coordinator 127.0.0.1:7710 >"$D/s1.log" 2>&1 </dev/null &
for _ in $(seq 1 60); do redis-cli -p 7711 set probe 1 2>/dev/null | grep -q OK && break; sleep 0.5; done
redis-benchmark -p 7711 -t set -r "$N" -n "$N" -d 256 -P 32 -c 20 -q 2>&1 | tr '\r' '\n' | grep "per sec"
echo "keys: $(redis-cli -p 7711 dbsize)"
t0=$(date +%s.%N)
setsid nohup dotnet "$B/tandem.dll" server --listen 127.0.0.1:7712 --coordinator 127.0.0.1:7710 >"$D/s2.log" 2>&1 </dev/null &
t1=""
for _ in $(seq 1 600); do
  s=$(redis-cli -p 7710 VS.STATUS)
  [ -z "$t1" ] && echo "$s" | grep -q '^{"view":2,' && t1=$(date +%s.%N)
  echo "$s" | grep -q '"acked":true,"lastAckedView":2,' && break
  sleep 0.05
done
t2=$(date +%s.%N)
echo "seconds from the second server's start: $(echo "$t2 - $t0" | bc) (from the view naming it: $(echo "$t2 - ${t1:-$t0}" | bc))"
echo "view now: $(redis-cli -p 7710 VS.STATUS | sed -n 's/^{"view":\([0-9]*\),.*/\1/p')"
