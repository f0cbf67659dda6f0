#!/usr/bin/env bash
# setup.sh: install what building and testing sluice needs on a fresh Debian machine.
# Idempotent: packages already present are not touched, and nothing is fetched when
# everything is there. Go itself is expected at /usr/local/go or on PATH (the
# project's toolchain, Go 1.26); Go modules come through the module proxy.
#
#   setup.sh build   C libraries for cgo (liburing, libnuma, OpenSSL's libcrypto) and a C
#                    compiler
#   setup.sh test    the above, plus the interop peers (qemu, busybox, nvme-cli) and
#                    the Go tools the lint and benchmark steps use
set -euo pipefail

want=${1:-test}
pkgs=(gcc pkg-config liburing-dev libnuma-dev libssl-dev)
if [[ $want == test ]]; then
	pkgs+=(qemu-system-x86 busybox-static nvme-cli cpio gzip xz-utils iproute2 tgt libiscsi-bin)
	# make bpf-check regenerates bpf/'s committed bpf2go output: clang 14, llvm-strip and
	# libbpf's headers (building never needs them).
	pkgs+=(clang-14 clang llvm libbpf-dev)
fi

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "setup: missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
		exit 1
	fi
	echo "setup: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >&2
	apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

if [[ $want == test ]]; then
	gobin=$(go env GOPATH)/bin
	[[ -x $gobin/staticcheck ]] || go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	[[ -x $gobin/benchstat ]] || go install golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
fi
