#!/usr/bin/env bash
# build.sh [OUT_DIR]: builds the orchestrator's web UI into OUT_DIR (default
# <checkout>/build/web, where ph-orchestrator looks by default: <bin>/../web).
#
#   1. `npm ci` from the committed package-lock.json, only when node_modules
#      is missing or older than package.json / package-lock.json; with
#      --prefer-offline (the npm cache is used when it holds the packages) and
#      --ignore-scripts (no install script runs: esbuild works without its
#      postinstall);
#   2. esbuild bundles src/main.js (and the CSS it imports) into app.js and
#      app.css, next to a copy of index.html.
# The bundle is made in a fresh folder beside OUT_DIR and then swapped in, so
# a running orchestrator never serves a half-written one. Two builds at once
# wait for each other (flock).
#
# Needs node and npm (Debian 12: apt-get install nodejs npm; node >= 18).
# The page it makes loads nothing from the internet: every byte is in OUT_DIR.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
OUT=${1:-$ROOT/build/web}

die() {
    echo "web/build.sh: $*" >&2
    exit 1
}

case $OUT in
-h | --help)
    sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
esac
command -v node >/dev/null 2>&1 || die "node is not installed (Debian 12: apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || die "npm is not installed (Debian 12: apt-get install npm)"
major=$(node -p 'process.versions.node.split(".")[0]')
((major >= 18)) || die "node $(node --version) is too old: the build needs node 18 or newer"

# Relative to the caller's folder, before the cd below.
mkdir -p "$(dirname "$OUT")"
OUT=$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")

# One build at a time per source folder: npm ci replaces node_modules whole.
lock=${TMPDIR:-/tmp}/ph-web-build-$(printf '%s' "$HERE" | cksum | cut -d' ' -f1).lock
exec 9>"$lock"
flock 9

cd "$HERE"
stamp=node_modules/.package-lock.json # npm writes it on every install
if [[ ! -f $stamp || ! -x node_modules/.bin/esbuild || package-lock.json -nt $stamp || package.json -nt $stamp ]]; then
    echo "web/build.sh: npm ci in $HERE" >&2
    npm ci --prefer-offline --ignore-scripts --no-audit --no-fund --loglevel=error >&2 ||
        die "npm ci failed (is the npm registry or the npm cache reachable?)"
fi

tmp=$(mktemp -d "$OUT.new.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
node_modules/.bin/esbuild src/main.js --bundle --minify --sourcemap --format=esm \
    --target=es2020,chrome100,firefox100,safari15 --legal-comments=linked \
    --log-level=warning --outfile="$tmp/app.js" || die "esbuild failed"
cp index.html "$tmp/index.html"
chmod 755 "$tmp"
chmod -R a+rX "$tmp"
if [[ -d $OUT ]]; then
    mv "$OUT" "$tmp.old"
    mv "$tmp" "$OUT"
    rm -rf "$tmp.old"
else
    mv "$tmp" "$OUT"
fi
trap - EXIT
echo "web/build.sh: built $OUT ($(cd "$OUT" && echo *))"
