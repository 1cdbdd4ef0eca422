#!/usr/bin/env bash
# Installs the Autobahn|Testsuite's fuzzing client (wstest 0.8.2) into DIR (default
# target/autobahn), without changing the system: no package is installed, no apt setting is
# changed, nothing is written outside DIR.
#
# wstest 0.8.2 runs on Python 2.7 only, which Debian 12 no longer ships. So:
#   1. CPython 2.7 comes from Debian 11 (bullseye) packages: a private apt configuration in
#      DIR/apt (bullseye from the mirror the system's apt already uses, or
#      $AUTOBAHN_DEBIAN_MIRROR; the same archive key) downloads the .debs, and `dpkg -x`
#      unpacks them into DIR/py27. Its libraries (libssl1.1, libffi7 that Debian 12 lacks)
#      are found through LD_LIBRARY_PATH, set by the wrapper below.
#   2. A Python 3 venv (DIR/venv3) holds virtualenv 20.21, the last release that creates
#      Python 2.7 environments (with pip 20.3.4, the last pip for 2.7).
#   3. That virtualenv (DIR/venv27) gets requirements.txt from PyPI: wstest and its
#      dependencies pinned; two are compiled against the unpacked Python headers.
#   4. DIR/wstest is the wrapper to run.
# A DIR whose wstest answers is reused as it is (CI caches target/); a half-done one is
# redone, keeping the downloaded .debs.
#
# Needs: x86_64 Debian (apt-get, dpkg), python3 with venv, a C compiler, and the Debian and
# PyPI registries. Usage: .ci/autobahn/install.sh [DIR]; exits non-zero, saying why, if it
# cannot install.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${1:-$HERE/../../target/autobahn}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
VERSION=0.8.2

fail() { echo "install.sh: $*" >&2; exit 1; }

# The version wstest reports, if DIR has one that runs.
answers() { [ -x "$DIR/wstest" ] && [[ "$("$DIR/wstest" -a 2>/dev/null)" == *"AutobahnTestSuite $VERSION"* ]]; }

if answers; then
  echo "wstest $VERSION ready (cached): $DIR/wstest"
  exit 0
fi

[ "$(uname -m)" = x86_64 ] || fail "x86_64 only (Debian 11's amd64 Python 2.7), this is $(uname -m)"
for tool in apt-get dpkg python3 cc; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done
python3 -c 'import venv, ensurepip' 2>/dev/null || fail "python3 lacks venv/ensurepip (apt-get install python3-venv)"

# A bullseye source on the mirror the system's apt uses (its first non-security URI).
mirror=${AUTOBAHN_DEBIAN_MIRROR:-$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
  | grep -v security | head -n1 | sed -E 's/^URIs:[[:space:]]*//; s/^deb (\[[^]]*\] )?//; s/[[:space:]].*$//' || true)}
[ -n "$mirror" ] || fail "no Debian mirror in the apt sources; set AUTOBAHN_DEBIAN_MIRROR"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || fail "$keyring is missing (apt-get install debian-archive-keyring)"

echo "== Python 2.7 from Debian 11 packages ($mirror bullseye)"
rm -rf "$DIR/py27" "$DIR/venv3" "$DIR/venv27" "$DIR/wstest"
mkdir -p "$DIR"/apt/{lists/partial,cache/archives/partial} "$DIR/debs" "$DIR/py27"
printf 'Types: deb\nURIs: %s\nSuites: bullseye\nComponents: main\nSigned-By: %s\n' "$mirror" "$keyring" \
  > "$DIR/apt/bullseye.sources"
apt=(-o Dir::Etc::SourceList="$DIR/apt/bullseye.sources" -o Dir::Etc::SourceParts=/dev/null
     -o Dir::State::Lists="$DIR/apt/lists" -o Dir::Cache="$DIR/apt/cache"
     -o APT::Sandbox::User=root -o Acquire::Retries=3)
debs=(python2.7 python2.7-minimal libpython2.7 libpython2.7-minimal libpython2.7-stdlib
      python2.7-dev libpython2.7-dev libssl1.1 libffi7)
if [ "$(find "$DIR/debs" -name '*.deb' | wc -l)" -lt "${#debs[@]}" ]; then
  apt-get "${apt[@]}" update -qq --error-on=any || fail "apt-get update of bullseye failed (is the Debian archive reachable?)"
  (cd "$DIR/debs" && apt-get "${apt[@]}" download -qq "${debs[@]}") || fail "apt-get download of ${debs[*]} failed"
fi
for deb in "$DIR"/debs/*.deb; do dpkg -x "$deb" "$DIR/py27"; done
libs="$DIR/py27/usr/lib/x86_64-linux-gnu"
python27="$DIR/py27/usr/bin/python2.7"
LD_LIBRARY_PATH="$libs" "$python27" -c 'import ssl, zlib, ctypes' || fail "the unpacked Python 2.7 does not run"

echo "== virtualenv for Python 2.7"
python3 -m venv "$DIR/venv3" || fail "python3 -m venv failed"
"$DIR/venv3/bin/pip" install -q --no-cache-dir --disable-pip-version-check "virtualenv==20.21.1" \
  || fail "pip install virtualenv==20.21.1 failed"
LD_LIBRARY_PATH="$libs" "$DIR/venv3/bin/virtualenv" -q --app-data "$DIR/virtualenv-data" --no-periodic-update \
  -p "$python27" "$DIR/venv27" || fail "virtualenv could not create the Python 2.7 environment"

echo "== wstest $VERSION and its dependencies (requirements.txt)"
include="$DIR/py27/usr/include"
LD_LIBRARY_PATH="$libs" CFLAGS="-I$include/python2.7 -I$include/x86_64-linux-gnu/python2.7 -I$include" \
  PYTHONWARNINGS=ignore "$DIR/venv27/bin/pip" install -q --no-cache-dir --disable-pip-version-check \
  -r "$HERE/requirements.txt" || fail "pip install -r requirements.txt failed"

cat > "$DIR/wstest" <<WRAPPER
#!/bin/sh
# wstest $VERSION on the Python 2.7 unpacked beside it (written by .ci/autobahn/install.sh).
LD_LIBRARY_PATH="$libs" PYTHONWARNINGS=ignore exec "$DIR/venv27/bin/wstest" "\$@"
WRAPPER
chmod +x "$DIR/wstest"
answers || fail "the installed wstest does not run"
echo "wstest $VERSION ready: $DIR/wstest"
