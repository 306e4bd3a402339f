# Sourced by the example scripts, after they set `here` to their own
# folder: defines GUICHET and a `guichet` function that runs it.
#
# GUICHET, when set, is the command to run (a path, or a command with
# arguments such as "cargo run -q --release --"). Otherwise the guichet on
# the PATH (installed as the README's "Install" says); otherwise the one
# built from these sources, so no script stops on `guichet: not found`.
if [ -z "${GUICHET:-}" ]; then
    if command -v guichet >/dev/null 2>&1; then
        GUICHET=$(command -v guichet)
    else
        GUICHET="cargo run -q --release --locked --manifest-path $here/../../Cargo.toml --bin guichet --"
        echo "guichet is not installed; running it from the sources: $GUICHET" >&2
    fi
fi
guichet() { $GUICHET "$@"; }
