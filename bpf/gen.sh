#!/usr/bin/env bash
# gen.sh: compile sluice.c with bpf2go into sluice_x86_bpfel.{go,o}, which are committed
# so that building sluice needs no clang.
#
#   gen.sh           regenerate in place (go generate ./bpf runs this)
#   gen.sh --check   regenerate into a scratch directory and fail if the committed
#                    files differ (make bpf-check, called by make lint)
#
# The output is byte-identical only for one compiler: Debian bookworm's clang 14 and
# llvm-strip 14 (tools/setup.sh installs them). bpf2go maps the source directory out of
# the debug info and strips DWARF, so the checkout's path does not matter.
set -euo pipefail
cd "$(dirname "$0")"

want_clang=14
for tool in clang llvm-strip; do
	command -v "$tool" >/dev/null || { echo "gen.sh: $tool not found (tools/setup.sh test installs it)" >&2; exit 1; }
done
have=$(clang -dumpversion | cut -d. -f1)
if [[ $have != "$want_clang" ]]; then
	echo "gen.sh: clang $have found; the committed output is from clang $want_clang (Debian bookworm)" >&2
	exit 1
fi

out=.
if [[ ${1:-} == --check ]]; then
	out=$(mktemp -d)
	trap 'rm -rf "$out"' EXIT
fi
go run github.com/cilium/ebpf/cmd/bpf2go -go-package bpf -output-dir "$out" \
	-cc clang -strip llvm-strip -cflags "-O2 -g -Wall -Werror" -target amd64 \
	-type event sluice sluice.c

if [[ $out != . ]]; then
	stale=0
	for f in sluice_x86_bpfel.go sluice_x86_bpfel.o; do
		if ! cmp -s "$f" "$out/$f"; then
			echo "bpf/$f is stale: run 'go generate ./bpf' (or bpf/gen.sh) and commit the result" >&2
			stale=1
		fi
	done
	exit $stale
fi
