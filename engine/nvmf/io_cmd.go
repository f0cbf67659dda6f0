package nvmf

import (
	"sluice/engine/bdev"
	"sluice/engine/probe"
	"sluice/engine/proto/nvme"
)

// execIO runs an NVM command on an I/O queue. Reads and writes go straight to the
// namespace's bdev channel on this reactor; nothing here allocates.
func (c *tcpConn) execIO(r *request) {
	ns, ch := c.channel(r.sqe.NSID())
	if ns == nil {
		r.complete(nvme.StatusInvalidNamespaceOrFormat.WithDNR())
		return
	}
	r.ns = ns
	if probe.IOEnabled() {
		// Connection fd and slot: unique among the process's commands in flight.
		key := uint64(c.sock.FD)<<16 | uint64(r.idx)
		probe.IOStart(ns.Bdev.Name(), c.pg.r.ID(), key, r.startNs, c.pg.r.Now()-r.startNs)
	}
	c.ioStarted(r)
	io := &r.io
	bs := uint64(ns.Bdev.BlockSize())
	op := r.sqe.NVMOpcode()
	switch op {
	case nvme.NVMReservationRegister, nvme.NVMReservationAcquire, nvme.NVMReservationRelease,
		nvme.NVMReservationReport:
		c.execResv(r, ns, op)
		return
	}
	if !c.resvAllows(ns, op) {
		r.complete(nvme.StatusReservationConflict.WithDNR())
		return
	}
	switch op {
	case nvme.NVMRead, nvme.NVMWrite:
		slba, nlb := r.sqe.SLBA(), uint64(r.sqe.Blocks())
		if slba >= ns.Bdev.NumBlocks() || nlb > ns.Bdev.NumBlocks()-slba {
			r.complete(nvme.StatusLBAOutOfRange.WithDNR())
			return
		}
		if uint64(r.xfer) != nlb*bs {
			r.complete(nvme.StatusDataSGLLengthInvalid.WithDNR())
			return
		}
		io.Type = bdev.IORead
		io.FUA = false
		if op == nvme.NVMWrite {
			io.Type = bdev.IOWrite
			io.FUA = r.sqe.FUA() || c.qp.ctrlr.wceOff.Load()
		}
		io.Offset, io.Length, io.Buf = slba*bs, nlb*bs, r.data
		// The data buffer is the allocator's, whose domain the file bdev registers as
		// io_uring fixed buffers: naming it saves the kernel pinning its pages per I/O.
		io.FixedBuf = 0
		if !r.buf.IsZero() {
			io.FixedBuf = uint32(r.buf.FixedBuffer()) + 1
		}
	case nvme.NVMFlush:
		io.Type, io.Offset, io.Length, io.Buf = bdev.IOFlush, 0, 0, nil
	case nvme.NVMWriteZeroes:
		slba, nlb := r.sqe.SLBA(), uint64(r.sqe.Blocks())
		if slba >= ns.Bdev.NumBlocks() || nlb > ns.Bdev.NumBlocks()-slba {
			r.complete(nvme.StatusLBAOutOfRange.WithDNR())
			return
		}
		io.Type = bdev.IOWriteZeroes
		if r.sqe.DEAC() && ns.Bdev.Caps().UnmapReadsZero {
			// DLFEAT promises that deallocated blocks read as zeros, so a punched hole
			// is a valid (and cheaper) zero.
			io.Type = bdev.IOUnmap
		}
		// Durable like a write: FUA, or the host turned the volatile cache off.
		io.FUA = r.sqe.FUA() || c.qp.ctrlr.wceOff.Load()
		io.Offset, io.Length, io.Buf = slba*bs, nlb*bs, nil
	case nvme.NVMDatasetManagement:
		r.execDSM(ns, ch)
		return
	default:
		r.complete(nvme.StatusInvalidOpcode.WithDNR())
		return
	}
	ch.Submit(io)
}

// execDSM deallocates each range in turn when the host asked for it (AD); the other
// attributes are hints that need no action.
func (r *request) execDSM(ns *Namespace, ch *bdev.Channel) {
	n := r.sqe.DSMRanges()
	if uint32(n*nvme.DSMRangeLen) != r.xfer || r.dir != nvme.DirHostToCtrl {
		r.complete(nvme.StatusDataSGLLengthInvalid.WithDNR())
		return
	}
	if r.sqe.DSMAttributes()&nvme.DSMDeallocate == 0 {
		r.complete(nvme.StatusSuccess)
		return
	}
	for i := 0; i < n; i++ {
		rg, err := nvme.DecodeDSMRange(r.data[i*nvme.DSMRangeLen:])
		if err != nil || rg.SLBA >= ns.Bdev.NumBlocks() || uint64(rg.NLB) > ns.Bdev.NumBlocks()-rg.SLBA {
			r.complete(nvme.StatusLBAOutOfRange.WithDNR())
			return
		}
	}
	if !ns.Bdev.Caps().Unmap {
		// Deallocate is advisory (NVMe base spec, Dataset Management): a volume that
		// cannot deallocate (an encrypted one, whose discards would reveal which blocks
		// are in use) keeps the data and says so, and DLFEAT promises nothing about
		// reads of deallocated blocks. Failing it would make Linux log every fstrim.
		r.complete(nvme.StatusSuccess)
		return
	}
	r.dsmNext, r.dsmCount = 0, n
	r.nextDSM(ch)
}

// nextDSM submits the next nonempty range, or completes when none is left.
func (r *request) nextDSM(ch *bdev.Channel) {
	bs := uint64(r.ns.Bdev.BlockSize())
	for r.dsmNext < r.dsmCount {
		rg, _ := nvme.DecodeDSMRange(r.data[r.dsmNext*nvme.DSMRangeLen:])
		r.dsmNext++
		if rg.NLB == 0 {
			continue
		}
		// DSM has no FUA bit; with the volatile cache off every change is durable.
		r.io.Type, r.io.Offset, r.io.Length, r.io.Buf = bdev.IOUnmap, rg.SLBA*bs, uint64(rg.NLB)*bs, nil
		r.io.FUA = r.c.qp.ctrlr.wceOff.Load()
		ch.Submit(&r.io)
		return
	}
	r.dsmCount = 0
	r.complete(nvme.StatusSuccess)
}

// ioDone is every request's bdev completion callback, bound once at setup.
func (r *request) ioDone(io *bdev.IO) {
	c := r.c
	if io.Status == bdev.StatusSuccess && r.dsmCount > 0 {
		ns, ch := c.channel(r.ns.ID)
		if ns != r.ns || ch == nil {
			// The namespace went away between two ranges: the rest were not done.
			r.dsmCount = 0
			r.complete(nvme.StatusInvalidNamespaceOrFormat.WithDNR())
			return
		}
		if c.state == connStateRunning {
			r.nextDSM(ch)
			return
		}
	}
	r.dsmCount = 0
	// The health log counts commands that completed successfully (Base: Host Read
	// Commands "completed by the controller", data units "read from" the controller).
	if st := c.qp.stats; st != nil && io.Status == bdev.StatusSuccess {
		switch io.Type {
		case bdev.IORead:
			st.readCmds.Add(1)
			st.dataUnitsRead.Add(io.Length / 512)
		case bdev.IOWrite:
			st.writeCmds.Add(1)
			st.dataUnitsWritten.Add(io.Length / 512)
		}
	}
	r.complete(bdevStatus(io))
}

// ioStarted counts an I/O command outstanding for Controller Busy Time, and claims the
// current second busy the first time this reactor sees it.
//
// Preconditions: on the connection's reactor; c.qp.stats is set.
func (c *tcpConn) ioStarted(r *request) {
	st := c.qp.stats
	st.outstanding++
	r.busyCounted = true
	c.pg.markBusy(c.qp.subsys, st)
}

// ioEnded is ioStarted's end, when the request is released.
func (c *tcpConn) ioEnded(r *request) {
	r.busyCounted = false
	c.qp.stats.outstanding--
}

// bdevStatus maps a bdev outcome to NVMe (following nvmet's blk_to_nvme_status).
func bdevStatus(io *bdev.IO) nvme.Status {
	switch io.Status {
	case bdev.StatusSuccess:
		return nvme.StatusSuccess
	case bdev.StatusNoSpace:
		return nvme.StatusCapacityExceeded.WithDNR()
	case bdev.StatusOutOfRange:
		return nvme.StatusLBAOutOfRange.WithDNR()
	case bdev.StatusUnsupported:
		return nvme.StatusInvalidOpcode.WithDNR()
	case bdev.StatusNoMemory:
		// Transient: the host retries.
		return nvme.StatusCommandInterrupted
	case bdev.StatusAborted:
		return nvme.StatusAbortedSQDeletion
	case bdev.StatusIOError:
		if io.Type == bdev.IORead {
			return nvme.StatusUnrecoveredReadError.WithDNR()
		}
		return nvme.StatusWriteFault.WithDNR()
	}
	return nvme.StatusInternalError
}
