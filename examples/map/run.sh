#!/usr/bin/env bash
# The map of it-lanscape's demo data beside a running gateway: two MLLP
# routes observed, a few messages through each, then the figures and the
# site built from the data folder and the gateway's journal. One route
# carries a flow the data declares (GAP -> ORB), the other one it does not
# (SIL -> GAP): the site's matrix shows it as a shadow flow.
#
#   ./run.sh                                   # guichet from the PATH (else from the sources); files in ./work
#   GUICHET=/path/to/guichet DATA=/srv/carto WORK=/tmp/map PORT_BASE=18700 ./run.sh
#
# Opens nothing: the site is $WORK/site/index.html, to open from disk.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/../guichet.sh"   # GUICHET, else guichet on the PATH, else from the sources
data=${DATA:-$here/../../../shared/fixtures/it-lanscape}
work=${WORK:-$here/work}
base=${PORT_BASE:-18700}
port() { echo $((base + $1)); }

mkdir -p "$work"
cd "$work"
rm -f journal.db journal.db-*
sed -e "s|@JOURNAL@|$work/journal.db|" -e "s|@DATA@|$data|" -e "s|@MAPPING@|$here/mapping.toml|" \
    -e "s/@ADMIN_PORT@/$(port 0)/" -e "s/@GAP_PORT@/$(port 1)/" -e "s/@PHARMA_PORT@/$(port 2)/" \
    -e "s/@DPI_PORT@/$(port 3)/" -e "s/@GAP_IN_PORT@/$(port 4)/" "$here/guichet.toml" >guichet.toml

pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop EXIT
start() { $GUICHET "$@" >>"$work/gateway.log" 2>&1 & pids+=($!); }

start listen --on "127.0.0.1:$(port 3)"     # the patient record (ORB)
start listen --on "127.0.0.1:$(port 4)"     # the admissions' inbound interface (GAP)
start run -c guichet.toml

ready() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for n in 1 2 3 4; do
    for _ in $(seq 100); do ready "$(port $n)" && break; sleep 0.1; done
    ready "$(port $n)" || { echo "port $(port $n) never opened; see $work/gateway.log" >&2; exit 2; }
done

guichet send --to "127.0.0.1:$(port 1)" "$here/gap-orbis.hl7"
guichet send --to "127.0.0.1:$(port 2)" "$here/pharmacie.hl7"

# The counts reach the journal at the next flush.
observed() { guichet map observed --journal journal.db --mapping "$here/mapping.toml" "$@"; }
for _ in $(seq 50); do
    [ "$(observed --json 2>/dev/null | grep -c '"route"')" -ge 2 ] && break
    sleep 0.2
done
observed

source=(--journal journal.db --mapping "$here/mapping.toml")
guichet map kpis "$data" "${source[@]}"
guichet map build "$data" "${source[@]}" --out site

# The same map, live: the gateway's admin listener renders it from the
# data folder and the journal (again when they change, at most every 5s).
exec 3<>"/dev/tcp/127.0.0.1/$(port 0)"
printf 'GET /map HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
sed '1,/^\r$/d' <&3 >site/live.html
exec 3<&-
echo "live map: http://127.0.0.1:$(port 0)/map while the gateway runs (a copy in site/live.html)"
