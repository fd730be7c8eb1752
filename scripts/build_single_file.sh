#!/usr/bin/env bash
# Build probe as one file, dist/probe.pyz, with pex (https://docs.pex-tool.org): the package,
# its bundled target lists and network data, and every dependency in one executable zip that
# runs with a bare Python interpreter:
#
#     python3 probe.pyz run
#
# By default the file is for Linux x86_64 (any distribution with glibc 2.17 or newer) and
# CPython 3.11, 3.12, 3.13 and 3.14: the compiled dependencies (cryptography, aiohttp and its
# helpers, cffi, maxminddb, aioquic and pylsqpack) are taken as manylinux2014 wheels for each
# of those versions.
# On first start the file unpacks itself into ~/.cache/pex (PEX_ROOT), which takes a few
# seconds; later starts reuse that.
#
# DuckDB is left out (about 20 MB per Python version): only `probe report` needs it, and in
# this build it says so. Researchers install the package with pipx instead.
#
# Usage: scripts/build_single_file.sh [-o FILE] [--arch x86_64|aarch64] [--python "3.11 3.12"]
#                                      [--current]
#   --current   only for the interpreter running pex and this machine (quicker; the tests use it)
# Needs pex (`pip install pex`; it is in the `test` extra). PYTHON picks the interpreter that
# runs pex (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."

out=dist/probe.pyz
arch=x86_64
versions="3.11 3.12 3.13 3.14"
current=0
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out=$2; shift 2 ;;
    --arch) arch=$2; shift 2 ;;
    --python) versions=$2; shift 2 ;;
    --current) current=1; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "build_single_file.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

python=${PYTHON:-python3}
targets=()
if [ "$current" = 1 ]; then
  targets=(--python "$python")
else
  for version in $versions; do
    abi="cp${version/./}"
    # the full version (x.y.0) is needed: some dependencies' markers test python_full_version
    targets+=(--platform "manylinux2014_${arch}-cp-${version}.0-${abi}")
  done
fi

mkdir -p "$(dirname "$out")"
# pip-2020-resolver: the vendored pip's legacy resolver takes the newest cryptography even
# where pyOpenSSL (aioquic's dependency) caps it, and the build then fails
"$python" -m pex . \
  --console-script probe \
  --exclude duckdb \
  --venv \
  --resolver-version pip-2020-resolver \
  --python-shebang '/usr/bin/env python3' \
  "${targets[@]}" \
  --output-file "$out"

size=$(wc -c < "$out")
echo "built $out ($((size / 1024 / 1024)) MB)"
if [ "$current" = 1 ]; then
  echo "for this machine's Python only: $("$python" -c 'import platform, sys; print(sys.implementation.name, platform.python_version(), platform.machine())')"
else
  echo "for CPython $versions on Linux $arch (glibc 2.17 or newer)"
fi
