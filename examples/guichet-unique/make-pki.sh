#!/bin/sh
# The test PKI of this example, in pki/ beside guichet.toml: a CA, the
# gateway's server certificate, and three partner certificates shaped like
# IGC Santé organisation certificates (O, OU = 1 + FINESS, CN; clientAuth).
#
# Run from this folder:  ./make-pki.sh   (guichet from the PATH, else built from the sources)
# Another binary:        GUICHET=../../target/debug/guichet ./make-pki.sh
#
# pki/ holds private keys: it is git-ignored, and every clone makes its own.
# The [[app]] entries of guichet.toml match issuer + CN + OU, which this
# script fixes, so they match the new certificates without any edit.
set -eu
cd "$(dirname "$0")"
here=$(pwd)
. "$here/../guichet.sh"

guichet pki init --out pki

# What partners dial: https://localhost:8443 or https://127.0.0.1:8443.
guichet pki issue --ca pki --name gateway --server-only \
    --dns localhost --ip 127.0.0.1

# Partners. The FINESS numbers are made up (department 99 does not exist).
guichet pki issue --ca pki --name partner-a --client-only \
    --o "CENTRE HOSPITALIER EXEMPLE A" --finess 990000017 --cn "Partner A ROR client"
guichet pki issue --ca pki --name partner-b --client-only \
    --o "CLINIQUE EXEMPLE B" --finess 990000025 --cn "Partner B ROR client"
guichet pki issue --ca pki --name partner-c --client-only \
    --o "EHPAD EXEMPLE C" --finess 990000033 --cn "Partner C ROR client"
