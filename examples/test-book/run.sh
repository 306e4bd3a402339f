#!/usr/bin/env bash
# Two engines under test, each a guichet gateway in front of its own ROR
# (guichet sim ror) and its own DPI (guichet listen), differing in one rule
# (engines/rules-*.toml); then both books compared between them.
#
#   ./run.sh                 # guichet from the PATH (else built from the sources); files in ./work
#   GUICHET=/path/to/guichet WORK=/tmp/tb PORT_BASE=18600 ./run.sh
#
# Exit status: guichet test compare's (0 when no case differs unexpectedly).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/../guichet.sh"   # GUICHET, else guichet on the PATH, else from the sources
work=${WORK:-$here/work}
base=${PORT_BASE:-18600}
port() { echo $((base + $1)); }

mkdir -p "$work"
cd "$work"
cp "$here/referential.csv" "$here"/engines/rules-*.toml .
[ -f pki/ca.pem ] || {
    guichet pki init --out pki >/dev/null
    guichet pki issue --ca pki --name gw --ip 127.0.0.1 --server-only >/dev/null
    guichet pki issue --ca pki --name etab --client-only >/dev/null
}
rm -f ./*.jsonl

pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop EXIT
start() { $GUICHET "$@" >>"$work/engines.log" 2>&1 & pids+=($!); }

engine() { # name rules ror dpi api mllp
    sed -e "s/@NAME@/$1/" -e "s/@RULES@/$2/" -e "s/@ROR_PORT@/$3/" -e "s/@DPI_PORT@/$4/" \
        -e "s/@API_PORT@/$5/" -e "s/@MLLP_PORT@/$6/" "$here/engines/engine.toml" >"$1.toml"
}
engine old rules-old.toml "$(port 1)" "$(port 3)" "$(port 5)" "$(port 7)"
engine new rules-new.toml "$(port 2)" "$(port 4)" "$(port 6)" "$(port 8)"

start sim ror --listen "127.0.0.1:$(port 1)" --referential referential.csv --record old-ror.jsonl
start sim ror --listen "127.0.0.1:$(port 2)" --referential referential.csv --record new-ror.jsonl
start listen --on "127.0.0.1:$(port 3)" --record old-dpi.jsonl
start listen --on "127.0.0.1:$(port 4)" --record new-dpi.jsonl
start run -c old.toml
start run -c new.toml

ready() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for n in 1 2 3 4 5 6 7 8; do
    for _ in $(seq 100); do ready "$(port $n)" && break; sleep 0.1; done
    ready "$(port $n)" || { echo "port $(port $n) never opened; see $work/engines.log" >&2; exit 2; }
done

tls=(--ca pki/ca.pem --cert pki/etab.pem --key pki/etab.key)
status=0
# The old engine against the new one, each ROR and DPI fresh.
guichet test compare "$here/bed-availability" \
    --old "https://127.0.0.1:$(port 5)/dispo" --old-sink old-ror.jsonl \
    --new "https://127.0.0.1:$(port 6)/dispo" --new-sink new-ror.jsonl "${tls[@]}" \
    --html bed-availability.html --json bed-availability.json --junit bed-availability.xml || status=$?
guichet test compare "$here/hl7" \
    --old "mllp://127.0.0.1:$(port 7)" --old-sink old-dpi.jsonl \
    --new "mllp://127.0.0.1:$(port 8)" --new-sink new-dpi.jsonl \
    --html hl7.html --json hl7.json --junit hl7.xml || status=$?
# Then each book against the engine in place: its expectations hold.
# (After the comparison: a ROR keeps what it was sent, and both must
# start alike for the comparison.)
guichet test run "$here/bed-availability" --target "old=https://127.0.0.1:$(port 5)/dispo" \
    --sink old=old-ror.jsonl "${tls[@]}" --junit run-bed-availability.xml || status=$?
guichet test run "$here/hl7" --target "old=mllp://127.0.0.1:$(port 7)" --sink old=old-dpi.jsonl \
    --junit run-hl7.xml || status=$?
echo "reports: $work/bed-availability.html $work/hl7.html"
exit "$status"
