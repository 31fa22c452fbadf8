#!/bin/sh
# counter.sh: a minimal cm process connector (see docs/connector-protocol.md).
# It moves no data: it counts seconds, checkpointing the count as ts and
# token, so it shows the protocol end to end.
#
# Declare it as a plugin, in a manifest in cm serve --plugin-dir:
#
#   name: counter
#   command: ["/bin/sh", "/abs/path/to/testdata/connectors/counter.sh"]
#
# and name it from a task:
#
#   source.type=process
#   source.plugin=counter

# The handshake is one JSON line on stdin. Resume after the checkpoint of
# subtopic "counter" if it has one (a token, here equal to ts, would be given
# back the same way), else start at the current time.
IFS= read -r handshake || exit 2
ts=$(printf '%s\n' "$handshake" | sed -n 's/.*"counter":{"ts":\([0-9][0-9]*\).*/\1/p')
[ -n "$ts" ] || ts=$(date +%s)
echo "counter: starting after ts $ts" >&2

# cm stops a connector with SIGTERM to its process group.
trap 'echo "counter: stopped at ts $ts" >&2; exit 143' TERM

while :; do
	ts=$((ts + 1))
	printf '{"type":"checkpoint","subtopic":"counter","ts":%d,"token":"%d"}\n' "$ts" "$ts"
	printf '{"type":"heartbeat"}\n'
	# In the background, so the trap runs as soon as SIGTERM arrives.
	sleep 1 &
	wait $!
done
