// Package bdev owns sluice's block devices: the Bdev object, per-reactor I/O channels,
// the registry of bdevs, per-bdev I/O statistics, the backend modules (null, malloc,
// file), and the layer modules stacked on another bdev (delay and error, the fault
// injectors that lifecycle tests and operators use; crypt and replica plug in the same
// way from their own packages).
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
// Lifecycle: a channel is released like SPDK's spdk_put_io_channel: the last Put may
// come with I/O in flight, the completions still arrive, and the backend channel closes
// after the last one, in a reactor message of its own, never inside the backend's
// poller. A bdev is deleted only when unclaimed, after its released channels drained;
// a delete that gives up leaves it as it was. Claims are typed: an exclusive claim (a
// layer) excludes every other; the NVMe export and the SCSI export of one volume share
// the bdev, one of each.
//
// Who may call it: protocol targets (nvmf, scsi) and the daemon's control plane.
// Channels and IOs are reactor-owned; the registry is safe from any goroutine.
package bdev
