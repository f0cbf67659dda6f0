#!/usr/bin/env bash
# build-image.sh [outdir]: build the qemu guest used to test sluice against the
# real Linux NVMe/TCP host and nvme-cli, and the real Linux iSCSI initiator
# (open-iscsi): a stock Debian kernel (uncompressed vmlinux, which qemu boots
# through its PVH note) and an initramfs with busybox, nvme-cli, the NVMe/TCP
# and iSCSI/TCP modules, iscsid and iscsiadm, sg_inq and sg_persist, the
# guestio helper and init.sh as /init.
#
# Prints the manifest (key=value lines: kernel, initrd, release, package, sig) on
# stdout; progress goes to stderr. Idempotent and cached: when nothing changed it
# only hashes its inputs and prints the manifest.
#
# Host packages (Debian bookworm), installed with apt-get when missing:
#   qemu-system-x86  (qemu-system-x86_64, to boot the image; not used here)
#   busybox-static   (the guest's userland, and depmod for the kernel tree)
#   nvme-cli         (copied into the guest with its shared libraries)
#   sg3-utils        (sg_inq and sg_persist, copied likewise)
#   cpio gzip xz-utils (the initramfs, and unpacking the xz-compressed kernel)
# plus Go (the project's toolchain, `go` on PATH or /usr/local/go/bin) to build
# guestio. kmod is not needed: busybox depmod writes modules.dep.
#
# open-iscsi is not installed on the host (its postinst would start daemons):
# apt-get download fetches it, and those of its library dependencies that the
# host lacks (libopeniscsiusr, libisns0), into $SLUICE_GUEST_DIR/debs/open-iscsi,
# and the image takes iscsid and iscsiadm from the extracted tree.
#
# Environment:
#   SLUICE_GUEST_DIR         cache dir (default /var/cache/sluice/guest)
#   SLUICE_GUEST_KERNEL_PKG  kernel package to use, e.g. linux-image-6.1.0-56-amd64
#                            (default: what linux-image-amd64 depends on, resolved
#                            once and remembered in $SLUICE_GUEST_DIR/kernel-package)
#   SLUICE_GUEST_REFRESH=1   resolve linux-image-amd64 again and download open-iscsi
#                            again (apt-get update first)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${SLUICE_GUEST_DIR:-/var/cache/sluice/guest}
out=${1:-$cache/image}

# Modules the guest loads, besides what they depend on. virtio-net, the
# paravirtual NIC, rather than an emulated e1000 (the usual choice for speed;
# not measured here). The generic
# crypto modules are loaded up front because nvme-core's t10-pi needs crct10dif
# and crc64-rocksoft, and nvme-tcp's header/data digests need crc32c; the kernel
# would otherwise have to find them through modprobe at an awkward moment.
# iscsi_tcp is the iSCSI initiator's TCP transport (libiscsi_tcp, libiscsi,
# scsi_transport_iscsi and scsi_mod come with it; its digests use crc32c too),
# sd_mod gives an iSCSI LUN its /dev/sdX and sg its /dev/sgN (sg_persist, sg_inq).
modules=(virtio_pci virtio_net configfs crc32c_generic crct10dif_generic crc64_rocksoft_generic nvme_tcp
	iscsi_tcp sd_mod sg)
# Shipped but not loaded: brd gives the guest a RAM block device (modprobe brd),
# on which the harness checks guestio's O_DIRECT path without any target, and
# nvmet-tcp is the kernel's own NVMe/TCP target: served on the guest's loopback
# it proves the host side end to end, and is a reference to compare sluice with.
extra_modules=(brd nvmet_tcp)

log() { printf 'build-image: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

export DEBIAN_FRONTEND=noninteractive LC_ALL=C

# --- host prerequisites -------------------------------------------------------
apt_updated=
apt_update() {
	if [[ -z $apt_updated ]]; then
		log "apt-get update"
		apt-get update -q >&2 || die "apt-get update failed"
		apt_updated=1
	fi
}
apt_install() {
	log "installing host packages: $*"
	if ! apt-get install -y -q --no-install-recommends "$@" >&2; then
		apt_update
		apt-get install -y -q --no-install-recommends "$@" >&2 || die "apt-get install $* failed"
	fi
}
pkg_installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }

missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
# The dynamic busybox package also provides /bin/busybox, which would not run
# in the guest without its libraries: insist on busybox-static.
pkg_installed busybox-static || missing+=(busybox-static)
[[ -x /usr/sbin/nvme ]] || missing+=(nvme-cli)
[[ -x /usr/bin/sg_inq && -x /usr/bin/sg_persist ]] || missing+=(sg3-utils)
command -v cpio >/dev/null || missing+=(cpio)
command -v gzip >/dev/null || missing+=(gzip)
command -v xz >/dev/null || missing+=(xz-utils)
if ((${#missing[@]})); then
	[[ $(id -u) == 0 ]] || die "missing host packages (${missing[*]}); run as root or install them"
	apt_install "${missing[@]}"
fi
busybox=/bin/busybox

mkdir -p "$cache" "$out"
cache=$(cd "$cache" && pwd)
out=$(cd "$out" && pwd)

# One build at a time per cache: tests in several packages may call this at once.
exec 9>"$cache/.lock"
flock -w 900 9 || die "timed out waiting for $cache/.lock"

# --- which kernel -------------------------------------------------------------
kpkg=${SLUICE_GUEST_KERNEL_PKG:-}
if [[ -z $kpkg && -s $cache/kernel-package && -z ${SLUICE_GUEST_REFRESH:-} ]]; then
	# Remembered: apt-cache takes about a second, which the warm path cannot afford.
	kpkg=$(<"$cache/kernel-package")
fi
if [[ -z $kpkg ]]; then
	[[ -z ${SLUICE_GUEST_REFRESH:-} ]] || apt_update
	resolve() { apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }'; }
	kpkg=$(resolve)
	if [[ -z $kpkg ]]; then
		apt_update
		kpkg=$(resolve)
	fi
	[[ -n $kpkg ]] || die "cannot resolve the kernel package that linux-image-amd64 depends on"
	echo "$kpkg" >"$cache/kernel-package"
fi

# --- inputs signature: the warm path ------------------------------------------
debdir=$cache/debs
iscsidebdir=$debdir/open-iscsi
# Downloaded once and kept, like the kernel package; a refresh fetches it again.
[[ -z ${SLUICE_GUEST_REFRESH:-} ]] || rm -rf "$iscsidebdir"
nvme_ver=$(dpkg-query -W -f='${Version}' nvme-cli)
sg3_ver=$(dpkg-query -W -f='${Version}' sg3-utils)
bb_ver=$(dpkg-query -W -f='${Version}' busybox-static)
find_debs() {
	shopt -s nullglob
	debs=("$debdir/${kpkg}"_*.deb)
	iscsi_debs=("$iscsidebdir"/*.deb)
	shopt -u nullglob
}
# The signature covers everything that goes into the image, so that an edit to
# this script, init.sh, the iSCSI files or guestio, or a new package version,
# rebuilds it.
compute_sig() {
	sig=$( {
		echo "kpkg=$kpkg debs=${debs[*]##*/} iscsi=${iscsi_debs[*]##*/} nvme=$nvme_ver sg3=$sg3_ver busybox=$bb_ver"
		echo "modules=${modules[*]} extra=${extra_modules[*]}"
		cat "$here/build-image.sh" "$here/init.sh" "$here/iscsid.conf" "$here/iscsid-start.sh" "$here"/guestio/*.go
	} | sha256sum | cut -c1-16)
}
find_debs
compute_sig

if [[ -f $out/manifest ]] && grep -qx "sig=$sig" "$out/manifest"; then
	kernel=$(sed -n 's/^kernel=//p' "$out/manifest")
	initrd=$(sed -n 's/^initrd=//p' "$out/manifest")
	if [[ -f $kernel && -f $initrd ]]; then
		cat "$out/manifest"
		exit 0
	fi
fi

# --- cold path ----------------------------------------------------------------
tmp=$(mktemp -d "$cache/tmp.XXXXXX")
chmod 0755 "$tmp" # apt-get download runs as _apt and must reach $tmp/dl
trap 'rm -rf "$tmp"' EXIT

# download DIR PKG...: apt-get download the packages into DIR.
download() {
	local dir=$1
	shift
	log "downloading $*"
	rm -rf "$tmp/dl"
	mkdir -p "$dir" "$tmp/dl"
	# apt-get download drops privileges to _apt, which must own the target dir.
	if id _apt >/dev/null 2>&1; then chown _apt "$tmp/dl"; fi
	if ! (cd "$tmp/dl" && apt-get download -q "$@" >&2); then
		apt_update
		(cd "$tmp/dl" && apt-get download -q "$@" >&2) || die "apt-get download $* failed"
	fi
	mv "$tmp/dl"/*.deb "$dir/"
}

if ((${#debs[@]} == 0)); then
	download "$debdir" "$kpkg"
	find_debs
	((${#debs[@]})) || die "apt-get download $kpkg left no ${kpkg}_*.deb"
	# The signature named no .deb; name it now so the next run takes the warm path.
	compute_sig
fi
if ((${#iscsi_debs[@]} == 0)); then
	download "$tmp/oi" open-iscsi
	# Its library dependencies that the host lacks (the others are copied from
	# the host, as nvme-cli's are, so that no library is in the image twice).
	# Depends is "a (>= 1) | b, c, ...": the first alternative of each, unversioned.
	libdeps=()
	while read -r p; do
		[[ $p == lib* ]] && ! pkg_installed "$p" && libdeps+=("$p")
	done < <(dpkg-deb -f "$tmp"/oi/open-iscsi_*.deb Depends | tr ',' '\n' |
		sed 's/|.*//; s/(.*)//; s/:.*//; s/[[:space:]]//g')
	((${#libdeps[@]} == 0)) || download "$tmp/oi" "${libdeps[@]}"
	mkdir -p "$iscsidebdir"
	mv "$tmp"/oi/*.deb "$iscsidebdir/"
	find_debs
	compute_sig
fi
deb=${debs[-1]}
kname=$(basename "$deb" .deb)
kdir=$cache/kernel/$kname

if [[ ! -f $kdir/.done ]]; then
	log "extracting $kname"
	rm -rf "$kdir"
	mkdir -p "$kdir"
	dpkg-deb -x "$deb" "$kdir/root"
	kver=$(ls "$kdir/root/lib/modules")
	[[ $kver != *$'\n'* && -n $kver ]] || die "expected one kernel release in $deb, got: $kver"
	# The package carries no modules.dep (the postinst runs depmod).
	"$busybox" depmod -b "$kdir/root" "$kver"
	# qemu boots an uncompressed ELF vmlinux through its PVH note about 2.5 s
	# sooner than the bzImage, which spends that time unpacking xz under TCG.
	# The bzImage setup header (Documentation/x86/boot.rst) gives the payload:
	# setup_sects at 0x1f1, payload_offset at 0x248, payload_length at 0x24c;
	# the payload starts (setup_sects+1)*512 bytes in, after the real-mode setup.
	vmlinuz=$kdir/root/boot/vmlinuz-$kver
	rd() { od -An -t "u$2" -j "$1" -N "$2" "$vmlinuz" | tr -d ' \n'; }
	setup_sects=$(rd $((0x1f1)) 1)
	((setup_sects != 0)) || setup_sects=4
	payload_off=$((($(rd $((0x248)) 4)) + (setup_sects + 1) * 512))
	payload_len=$(rd $((0x24c)) 4)
	grep -qx 'CONFIG_KERNEL_XZ=y' "$kdir/root/boot/config-$kver" || die "kernel payload is not xz; teach build-image.sh its compression"
	# The payload ends with a 4-byte uncompressed size after the xz stream, which
	# --single-stream ignores. Through a file, not a pipe: xz stops reading
	# early, and a writer killed by SIGPIPE would fail the pipeline.
	dd if="$vmlinuz" of="$tmp/payload.xz" bs=1M iflag=skip_bytes,count_bytes skip="$payload_off" count="$payload_len" status=none
	xz -dc --single-stream <"$tmp/payload.xz" >"$kdir/vmlinux.tmp"
	rm -f "$tmp/payload.xz"
	[[ $(head -c 4 "$kdir/vmlinux.tmp" | od -An -c | tr -d ' ') == '177ELF' ]] || die "extracted kernel is not an ELF file"
	mv "$kdir/vmlinux.tmp" "$kdir/vmlinux"
	echo "$kver" >"$kdir/release"
	touch "$kdir/.done"
fi
kver=$(<"$kdir/release")
kroot=$kdir/root
moddir=$kroot/lib/modules/$kver

# --- the initramfs tree -------------------------------------------------------
stage=$tmp/root
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,etc/sluice,etc/nvme,etc/iscsi,proc,sys,dev,tmp,run,root,lib/modules/"$kver"}

# busybox and its applets as symlinks (--list-full gives their install paths).
cp "$busybox" "$stage/bin/busybox"
while read -r applet; do
	[[ $applet == bin/busybox || $applet == linuxrc ]] && continue
	[[ -e $stage/$applet ]] || ln -s /bin/busybox "$stage/$applet"
done < <("$busybox" --list-full)

# stage_elf SRC DEST [ROOT]: copy the program SRC to DEST in the staged tree,
# with every library it loads at the path ldd resolves (the loader too). ROOT is
# an extracted package tree whose libraries the host lacks: they are found there
# and staged at their path inside it.
stage_elf() {
	local src=$1 dst=$2 root=${3:-} libpath= lib rel out
	if [[ -n $root ]]; then
		libpath=$(find "$root" -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:)
	fi
	mkdir -p "$stage$(dirname "$dst")"
	cp "$src" "$stage$dst"
	out=$(LD_LIBRARY_PATH=$libpath ldd "$src") || die "ldd $src failed"
	! grep -q 'not found' <<<"$out" ||
		die "$src needs libraries that are neither on the host nor in ${root:-(no tree)}:"$'\n'"$out"
	while read -r lib; do
		rel=$lib
		[[ -n $root && $lib == "$root"/* ]] && rel=${lib#"$root"}
		[[ -e $stage$rel ]] && continue
		mkdir -p "$stage$(dirname "$rel")"
		cp -L "$lib" "$stage$rel"
	done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out")
}

# nvme-cli, and sg3-utils' sg_inq and sg_persist (SCSI INQUIRY and persistent
# reservations through /dev/sgN or /dev/sdX).
stage_elf /usr/sbin/nvme /usr/sbin/nvme
stage_elf /usr/bin/sg_inq /usr/bin/sg_inq
stage_elf /usr/bin/sg_persist /usr/bin/sg_persist

# open-iscsi: iscsid and iscsiadm from the downloaded packages, their own
# libraries (libopeniscsiusr, libisns) from the same tree.
oiroot=$tmp/open-iscsi
mkdir -p "$oiroot"
for d in "${iscsi_debs[@]}"; do dpkg-deb -x "$d" "$oiroot"; done
stage_elf "$oiroot/sbin/iscsid" /sbin/iscsid "$oiroot"
stage_elf "$oiroot/sbin/iscsiadm" /sbin/iscsiadm "$oiroot"
cp "$here/iscsid.conf" "$stage/etc/iscsi/iscsid.conf"
# iscsid accepts iscsiadm's requests only from a peer uid that getpwuid knows.
echo 'root:x:0:0:root:/root:/bin/sh' >"$stage/etc/passwd"
echo 'root:x:0:' >"$stage/etc/group"
cp "$here/iscsid-start.sh" "$stage/usr/sbin/iscsid-start"
chmod 0755 "$stage/usr/sbin/iscsid-start"

for check in "/usr/sbin/nvme version" "/sbin/iscsiadm --version" "/sbin/iscsid --version" \
	"/usr/bin/sg_inq --version"; do
	# shellcheck disable=SC2086 # a program and its argument
	LD_LIBRARY_PATH='' chroot "$stage" $check >/dev/null 2>&1 ||
		log "warning: $check does not run in the staged tree (chroot check)"
done

# Modules: resolve the dependency closure of $modules from modules.dep, in load order.
declare -A dep_of path_of seen
while IFS= read -r line; do
	p=${line%%:*}
	dep_of[$p]=${line#*:}
	b=${p##*/}
	b=${b%.ko*}
	path_of[${b//-/_}]=$p
done <"$moddir/modules.dep"
order=()
load=() # what /init loads, in order; the rest only modprobe loads
visit() {
	local p=$1 d
	[[ -n ${seen[$p]:-} ]] && return
	seen[$p]=1
	for d in ${dep_of[$p]}; do visit "$d"; done
	order+=("$p")
}
for m in "${modules[@]}" - "${extra_modules[@]}"; do
	if [[ $m == - ]]; then
		load=("${order[@]}")
		continue
	fi
	n=${m//-/_}
	if [[ -n ${path_of[$n]:-} ]]; then
		visit "${path_of[$n]}"
	elif sed 's/-/_/g' "$moddir/modules.builtin" | grep -q "/${n}\.ko\$"; then
		log "module $m is built in"
	else
		die "module $m is neither in modules.dep nor built in ($kver)"
	fi
done
for p in "${order[@]}"; do
	mkdir -p "$stage/lib/modules/$kver/$(dirname "$p")"
	cp "$moddir/$p" "$stage/lib/modules/$kver/$p"
done
printf '%s\n' "${load[@]}" >"$stage/etc/sluice/modules"
cp "$moddir"/modules.builtin "$moddir"/modules.order "$stage/lib/modules/$kver/"
# A modules.dep for the staged modules only, for the guest's modprobe.
"$busybox" depmod -b "$stage" "$kver"

# guestio: static, so it needs nothing from the guest.
gobin=$(command -v go || true)
[[ -n $gobin ]] || gobin=/usr/local/go/bin/go
[[ -x $gobin ]] || die "go not found (PATH or /usr/local/go/bin)"
(cd "$repo" && CGO_ENABLED=0 "$gobin" build -trimpath -ldflags='-s -w' -o "$stage/usr/bin/guestio" ./tools/guest/guestio) ||
	die "building guestio failed"

cp "$here/init.sh" "$stage/init"
chmod 0755 "$stage/init"

# newc cpio, uncompressed: the kernel unpacks it faster under TCG than it
# would inflate gzip, and the file stays in the host's page cache anyway.
(cd "$stage" && find . -mindepth 1 | sort | cpio -o -H newc -R 0:0 --quiet) >"$tmp/initrd.img"

# Publish: kernel first, then initrd, then the manifest that names them.
if [[ ! "$out/vmlinux" -ef "$kdir/vmlinux" ]]; then
	rm -f "$out/vmlinux.tmp"
	ln "$kdir/vmlinux" "$out/vmlinux.tmp" 2>/dev/null || cp "$kdir/vmlinux" "$out/vmlinux.tmp"
	mv -f "$out/vmlinux.tmp" "$out/vmlinux"
fi
mv -f "$tmp/initrd.img" "$out/initrd.img"
cat >"$tmp/manifest" <<EOF
kernel=$out/vmlinux
initrd=$out/initrd.img
release=$kver
package=$kname
sig=$sig
EOF
mv -f "$tmp/manifest" "$out/manifest"
log "built $(du -h "$out/initrd.img" | cut -f1) initramfs for $kver in $out"
cat "$out/manifest"
