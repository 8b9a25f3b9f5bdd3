#!/usr/bin/env bash
# Installs the system tools the project uses (graphviz's `dot`, Chromium for the book's
# browser check) with apt-get, where that is possible (root, Debian/Ubuntu). Elsewhere it
# says what is missing and carries on: the features that need them report it clearly.
set -u
need=()
command -v dot >/dev/null 2>&1 || need+=(graphviz)
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1; } ||
        echo "setup: could not apt-get install ${need[*]}; continuing without" >&2
else
    echo "setup: not installed: ${need[*]} (install them with your package manager for diagrams and the book check)" >&2
fi
exit 0
