// Command guestio writes and verifies a deterministic data pattern on a block
// device with O_DIRECT. It runs inside the qemu guest of package
// sluice/tools/guest, where busybox dd has no O_DIRECT and no way to check data,
// so that interop tests can prove byte-exact round trips through the Linux
// NVMe/TCP host without the page cache hiding a broken target.
//
// Usage:
//
//	guestio write      -dev /dev/nvme0n1 -bs 4096 -count N -offset BYTES -seed S
//	guestio verify     -dev /dev/nvme0n1 -bs 4096 -count N -offset BYTES -seed S
//	guestio zero-check -dev /dev/nvme0n1 -offset BYTES -len BYTES [-bs N]
//
// It prints one line starting with "guestio: ok", "guestio: MISMATCH" or
// "guestio: ERROR" and exits 0 on success, 1 on a data mismatch (the line names
// the first bad byte's device offset) and 2 on any other error (bad flags, open
// or I/O failure).
//
// It owns nothing but its pattern: every 8-byte word is a function of the seed
// and its absolute device offset, so any range can be verified on its own. It
// must stay static (CGO_ENABLED=0, standard library only) and must never write
// outside the range it was given.
package main
