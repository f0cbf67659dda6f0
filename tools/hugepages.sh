#!/usr/bin/env bash
# hugepages.sh run N -- CMD...: reserve at least N 2 MiB hugepages for CMD, then put
# the old setting back, whatever CMD's outcome. Without root, or when the kernel
# cannot find the memory, CMD runs anyway and the allocator falls back to ordinary
# pages (its tests check both paths).
set -uo pipefail
[[ ${1:-} == run && $# -ge 4 && ${3:-} == -- ]] || { echo "usage: hugepages.sh run N -- CMD..." >&2; exit 2; }
n=$2
shift 3
knob=/proc/sys/vm/nr_hugepages
old=$(cat "$knob" 2>/dev/null || echo 0)
if [[ -w $knob && $old -lt $n ]]; then
	echo "$n" >"$knob" 2>/dev/null || true
	echo "hugepages: reserved $(cat "$knob") (was $old) for the tests" >&2
	trap 'echo "$old" >"$knob" 2>/dev/null; echo "hugepages: restored $old" >&2' EXIT
fi
"$@"
