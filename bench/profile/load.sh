#!/bin/bash
# Loads N random keys of 256 B into the primary started by start.sh (redis-benchmark, 2 clients, pipeline 1000)
# while reading VS.STATUS every 100 ms; prints each view seen and the longest time since a server's last ping.
# A view change during the load means the coordinator took a server for dead (or it was reported).
#   bash bench/profile/load.sh 4000000
set -u
N=${1:-4000000}
S=/tmp/tandem-profile/status.log
(for _ in $(seq 1 3000); do redis-cli -p 7600 VS.STATUS 2>/dev/null; sleep 0.1; done > "$S") & poller=$!
timeout 300 redis-benchmark -p 7601 -t set -d 256 -r "$N" -n "$N" -P 1000 -c 2 -q 2>&1 | tr '\r' '\n' | grep -v "rps=" | grep -v "^\s*$" | tail -2
kill $poller
python3 - "$S" <<'PY'
import json, sys
prev = None; longest = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith('{'): continue
    s = json.loads(line)
    for sv in s['servers']:
        longest[sv['address']] = max(longest.get(sv['address'], 0), sv['lastPingMsAgo'])
    if (s['view'], s['acked']) != prev:
        print('view', s['view'], 'primary', s['primary'], 'backup', s['backup'], 'acked' if s['acked'] else 'unacked')
        prev = (s['view'], s['acked'])
print('longest since a ping (ms):', longest)
PY
echo "keys: $(redis-cli -p 7601 dbsize)"
