// Package bdev owns sluice's block devices: the Bdev object, per-reactor I/O channels,
// the registry of bdevs, per-bdev I/O statistics, and the backend modules (null,
// malloc, file).
//
// An I/O is submitted on a reactor through that reactor's Channel for the bdev and
// completes on the same reactor through the IO's Done callback, never blocking.
// Completion may happen before Submit returns (null and malloc complete inline), so a
// caller must have finished setting up its own state before it submits.
//
// Backends plug in through the Backend and BackendChannel interfaces (SPDK's bdev
// module function table). The generic layer checks ranges and capabilities and keeps
// statistics, so backends see only valid requests.
//
// Who may call it: protocol targets (nvmf, scsi) and the daemon's control plane.
// Channels and IOs are reactor-owned; the registry is safe from any goroutine.
package bdev
