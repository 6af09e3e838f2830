#!/usr/bin/env bash
# gitgate quick start, on a fresh Debian 12 (as root, or with sudo):
#
#   bash deploy/quickstart.sh
#
# 1. installs the build and demo dependencies with apt-get,
# 2. builds gitgate with meson/ninja into build/,
# 3. runs the demo (deploy/demo.py): a local demo upstream standing in for
#    GitHub, keys, a token for demo/hello that may push to agent/* only, and
#    the real git client cloning, pushing to agent/demo (lands) and to main
#    (refused) through gitgate. gitgate then keeps running in the foreground
#    with its URL and token printed; Ctrl-C stops everything.
#
# Options:
#   --skip-install   skip apt-get and the build (use $GITGATE or build/gitgate)
#   --no-wait        stop after the demo instead of keeping gitgate running
#   --workdir DIR    where the demo keeps its files (default: demo/)
#   --port N         gitgate's port on 127.0.0.1 (default: a free port)
set -euo pipefail

cd "$(dirname "$0")/.."

skip_install=0
demo_args=()
while [ $# -gt 0 ]; do
	case "$1" in
	--skip-install) skip_install=1 ;;
	--no-wait) demo_args+=("--no-wait") ;;
	--workdir|--port)
		[ $# -ge 2 ] || { echo "quickstart: $1 needs a value" >&2; exit 2; }
		demo_args+=("$1" "$2"); shift ;;
	-h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
	*) echo "quickstart: unknown option: $1" >&2
	   echo "usage: bash deploy/quickstart.sh [--skip-install] [--no-wait] [--workdir DIR] [--port N]" >&2
	   exit 2 ;;
	esac
	shift
done

packages=(
	build-essential meson ninja-build pkg-config
	libmicrohttpd-dev libcurl4-openssl-dev libgit2-dev libjansson-dev
	libsodium-dev zlib1g-dev check libvectorscan-dev libssl-dev
	git lighttpd lighttpd-mod-openssl lighttpd-mod-deflate openssl python3 python3-cryptography curl ca-certificates
)

if [ "$skip_install" -eq 0 ]; then
	sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null || {
			echo "quickstart: run as root (or install sudo)" >&2; exit 1; }
		sudo=(sudo)
	fi
	echo "==> Installing dependencies with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get update
	"${sudo[@]}" apt-get install -y --no-install-recommends "${packages[@]}"

	echo "==> Building gitgate into build/"
	if [ ! -f build/build.ninja ]; then
		meson setup build
	fi
	ninja -C build
	export GITGATE="$PWD/build/gitgate"
fi

gitgate="${GITGATE:-$PWD/build/gitgate}"
if [ ! -x "$gitgate" ]; then
	echo "quickstart: $gitgate not found; run without --skip-install to build it" >&2
	exit 1
fi

echo "==> Running the demo with $gitgate"
exec python3 deploy/demo.py --gitgate "$gitgate" "${demo_args[@]+"${demo_args[@]}"}"
