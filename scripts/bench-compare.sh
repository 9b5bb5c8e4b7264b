#!/usr/bin/env bash
# Runs the same load shapes against Apogee (apogee dev) and NATS JetStream (file storage, 1 replica)
# on this machine, one after the other, and prints one table row per shape with both figures, the
# ratio Apogee/JetStream, and each server's CPU seconds per 100k messages and RSS after the shape.
#
#   scripts/bench-compare.sh            # takes a few minutes; writes nothing outside a temp directory
#
# It installs nats-server from the Go module proxy (pinned version) into the temp directory.
set -euo pipefail
cd "$(dirname "$0")/.."
NATS_VERSION=${NATS_VERSION:-v2.15.2}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

echo "building apogee, jsbench and nats-server $NATS_VERSION ..." >&2
go build -o "$work/apogee" ./cmd/apogee
(cd bench && go build -o "$work/jsbench" ./jsbench)
GOBIN="$work" go install "github.com/nats-io/nats-server/v2@$NATS_VERSION"

cpu_seconds() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }
# rss_mb prints anonymous/total resident MiB: the total includes page-cache pages of memory-mapped
# files, which the kernel can drop.
rss_mb() { awk '/RssAnon/{a=$2} /VmRSS/{t=$2} END{printf "%.0f/%.0f", a/1024, t/1024}' "/proc/$1/status"; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2" | tail -1; }

start_apogee() { # $1 = flush type; sets APID and NS
  rm -rf "$work/apogee-data"
  "$work/apogee" dev --data-dir "$work/apogee-data" --namesrv-listen 127.0.0.1:0 --broker-listen 127.0.0.1:0 \
    --flush "$1" --log-level warn >"$work/apogee.log" 2>&1 &
  APID=$!; pids+=("$APID")
  for _ in $(seq 100); do
    NS=$(sed -n 's/.*NameServer: \([0-9.:]*\).*/\1/p' "$work/apogee.log"); [[ -n $NS ]] && break; sleep 0.1
  done
}
start_nats() { # $1 = extra jetstream settings; sets NPID and URL
  rm -rf "$work/js" "$work/nats.log"
  printf 'listen: 127.0.0.1:-1\njetstream { store_dir: "%s/js"\n %s }\n' "$work" "$1" >"$work/nats.conf"
  "$work/nats-server" -c "$work/nats.conf" -l "$work/nats.log" &
  NPID=$!; pids+=("$NPID")
  for _ in $(seq 100); do
    URL=$(sed -n 's/.*Listening for client connections on \([0-9.:]*\).*/nats:\/\/\1/p' "$work/nats.log" 2>/dev/null | head -1 || true); [[ -n $URL ]] && break; sleep 0.1
  done
}
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

printf '%-34s %12s %12s %7s %16s %22s\n' shape apogee_tps jetstream_tps ratio "cpu_s/100k a|j" "rss_mb anon/total a|j"
row() { # $1 shape, $2 apogee RESULT, $3 apogee cpu, $4 apogee rss, $5 js RESULT, $6 js cpu, $7 js rss
  local a j an jn
  a=$(field tps "$2"); j=$(field tps "$5")
  an=$(field sent "$2"); [[ -n $an ]] || an=$(field received "$2")
  jn=$(field sent "$5"); [[ -n $jn ]] || jn=$(field received "$5")
  printf '%-34s %12s %12s %7.2f %16s %22s\n' "$1" "$a" "$j" "$(echo "$a / $j" | bc -l)" \
    "$(printf '%.2f|%.2f' "$(echo "$3 * 100000 / $an" | bc -l)" "$(echo "$6 * 100000 / $jn" | bc -l)")" "$4|$7"
}
measure() { # $1 pid, then the command; prints "RESULT...;cpu;rss"
  local pid=$1 c0 out; shift
  c0=$(cpu_seconds "$pid")
  out=$("$@" | grep '^RESULT')
  echo "$out;$(echo "$(cpu_seconds "$pid") - $c0" | bc -l);$(rss_mb "$pid")"
}
shape() { # $1 label, $2 apogee bench args, $3 jsbench args
  local ar jr
  ar=$(measure "$APID" "$work/apogee" bench "$2" -n "$NS" --log-level warn ${@:4:1})
  jr=$(measure "$NPID" "$work/jsbench" "$3" --url "$URL" ${@:5:1})
  IFS=';' read -r a1 a2 a3 <<<"$ar"; IFS=';' read -r j1 j2 j3 <<<"$jr"
  row "$1" "$a1" "$a2" "$a3" "$j1" "$j2" "$j3"
}

start_apogee ASYNC_FLUSH; start_nats ""
shape "1 KiB, 1 sync producer"       producer pub "-t s1 --threads 1 --size 1024 --count 20000"  "--subject s1 --threads 1 --size 1024 --count 20000"
shape "1 KiB, 8 sync producers"      producer pub "-t s8 --threads 8 --size 1024 --count 100000" "--subject s8 --threads 8 --size 1024 --count 100000"
shape "128 B, 8 sync producers"      producer pub "-t t8 --threads 8 --size 128 --count 100000"  "--subject t8 --threads 8 --size 128 --count 100000"
shape "1 KiB, async producers"       producer pub "-t a8 --threads 8 --size 1024 --count 200000 --async" "--subject a8 --threads 8 --size 1024 --count 200000 --async"
shape "128 B, async producers"       producer pub "-t b8 --threads 8 --size 128 --count 200000 --async"  "--subject b8 --threads 8 --size 128 --count 200000 --async"
shape "consumer draining 100k 1 KiB" consumer sub "-t s8 --count 100000" "--subject s8 --count 100000"
stop "$APID"; stop "$NPID"

start_apogee SYNC_FLUSH; start_nats "sync_interval: always"
shape "1 KiB, 64 producers, fsync each" producer pub "-t f64 --threads 64 --size 1024 --count 30000" "--subject f64 --threads 64 --size 1024 --count 30000"
stop "$APID"; stop "$NPID"
