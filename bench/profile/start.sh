#!/bin/bash
# Starts a coordinator on 127.0.0.1:7600 and two servers on 7601 (the first primary) and 7602 (its backup),
# each its own process, from the tandem build in BINDIR; waits until the primary answers a write.
#   bash bench/profile/start.sh src/Tandem.Cli/bin/Release/net10.0
# Logs and the coordinator's data go to /tmp/tandem-profile. perf sees JIT frames (perf maps, no W^X).
set -u
B=${1:?usage: start.sh BINDIR}
D=/tmp/tandem-profile
pkill -f "tandem.dll (coordinator|server) --listen 127.0.0.1:76" 2>/dev/null; sleep 0.5
rm -rf "$D"; mkdir -p "$D"
export DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0
setsid nohup dotnet "$B/tandem.dll" coordinator --listen 127.0.0.1:7600 --data-dir "$D/c" >"$D/c.log" 2>&1 </dev/null &
sleep 1.5
setsid nohup dotnet "$B/tandem.dll" server --listen 127.0.0.1:7601 --coordinator 127.0.0.1:7600 >"$D/s1.log" 2>&1 </dev/null &
sleep 1.5
setsid nohup dotnet "$B/tandem.dll" server --listen 127.0.0.1:7602 --coordinator 127.0.0.1:7600 >"$D/s2.log" 2>&1 </dev/null &
for _ in $(seq 1 60); do
  redis-cli -p 7601 set probe 1 2>/dev/null | grep -q OK && break
  sleep 0.5
done
sleep 2
