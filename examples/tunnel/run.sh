#!/usr/bin/env bash
# Runs the EAI <-> DPI tunnel pair on this host, shows one HL7 message
# crossing each way through mutual TLS, then keeps the tunnels up until
# Ctrl-C (or exits at once with --once).
#
# The two stand-in applications (an "EAI" and a "DPI" that answer each HL7
# message with an ACK) are small Python scripts; later versions of guichet
# provide `guichet send` / `guichet listen` for this.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
once=no
[ "${1:-}" = "--once" ] && once=yes

cargo build --release --manifest-path "$root/Cargo.toml" -p guichet
target="${CARGO_TARGET_DIR:-$root/target}"
guichet="$target/release/guichet"

cd "$here"
if [ ! -f pki/ca.pem ]; then
  "$guichet" pki init --out pki
  "$guichet" pki issue --ca pki --name eai --dns localhost --ip 127.0.0.1
  "$guichet" pki issue --ca pki --name dpi --dns localhost --ip 127.0.0.1
fi
"$guichet" check -c eai.toml
"$guichet" check -c dpi.toml

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

python3 "$here/standin_app.py" listen 21011 DPI & pids+=($!)
python3 "$here/standin_app.py" listen 22011 EAI & pids+=($!)
"$guichet" run -c eai.toml 2> >(sed 's/^/[eai gateway] /' >&2) & pids+=($!)
"$guichet" run -c dpi.toml 2> >(sed 's/^/[dpi gateway] /' >&2) & pids+=($!)
sleep 1

echo "--- EAI -> DPI: ADT^A01 through 127.0.0.1:21010 (plain) => mTLS => DPI"
python3 "$here/standin_app.py" send 21010 EAI
echo "--- DPI -> EAI: ORU^R01 through 127.0.0.1:22010 (plain) => mTLS => EAI"
python3 "$here/standin_app.py" send 22010 DPI

if [ "$once" = yes ]; then exit 0; fi
echo "Tunnels are up: EAI side plain on 127.0.0.1:21010, DPI side plain on 127.0.0.1:22010. Ctrl-C stops."
wait
