package scsi

import (
	"strconv"

	"sluice/engine/mem"
	"sluice/engine/proto/scsi"
)

// TaskAttr is the SAM-5 task attribute the transport received (iSCSI ATTR). The LU
// runs every task as SIMPLE: it keeps no ordered queue, and VPD 86h says so (SIMPSUP
// only), so initiators do not rely on ORDERED or HEAD OF QUEUE semantics.
type TaskAttr uint8

// Task attributes (SAM-5 §8.6, iSCSI ATTR field values).
const (
	AttrUntagged TaskAttr = iota
	AttrSimple
	AttrOrdered
	AttrHeadOfQueue
	AttrACA
)

// AbortReason says whether and on whose behalf a task was aborted instead of run to its
// end, which decides what the transport sends for it.
type AbortReason uint8

const (
	// NotAborted: the task ran; send Status (and sense, data) as usual.
	NotAborted AbortReason = iota
	// AbortedByNexus: the task's own I_T nexus asked (ABORT TASK, ABORT TASK SET,
	// CLEAR TASK SET, or a LOGICAL UNIT RESET it sent). SAM-5 §7.2: the transport sends
	// no SCSI response for it; the task management response covers it.
	AbortedByNexus
	// AbortedByOther: another I_T nexus's action aborted it (its LOGICAL UNIT RESET, a
	// PREEMPT AND ABORT of this nexus's registration). The Control mode page reports
	// TAS=1, so the transport sends TASK ABORTED status (SAM-5 §5.6).
	AbortedByOther
)

// String names the reason for logs.
func (a AbortReason) String() string {
	switch a {
	case NotAborted:
		return "not aborted"
	case AbortedByNexus:
		return "aborted by its nexus"
	case AbortedByOther:
		return "aborted by another nexus"
	}
	return "abort reason " + strconv.Itoa(int(a))
}

// SenseCap is the room Task.Sense has: descriptor format sense data with an
// information and a sense-key specific descriptor, the most this package writes.
const SenseCap = scsi.SenseMaxLen

// Task is one SCSI command. The transport allocates it once per command slot and
// reuses it for every command, so executing one allocates nothing: it fills the input
// fields, calls Execute, and reads the results when Done runs.
//
// Ownership: between Execute and Done the task belongs to the Channel (the transport
// must not touch it); from Done on it is the transport's again, and it may reuse the
// task for another command inside Done, or reset it by assigning a fresh Task (keeping
// Done) before the next Execute. The bdev I/O contexts live in the channel, not in the
// task, so a reset task costs no allocation either.
type Task struct {
	// CDB holds the command descriptor block: an iSCSI BHS carries 16 bytes, padded.
	CDB [16]byte
	// ExtCDB, when not nil, is the whole CDB of a command longer than 16 bytes (an
	// iSCSI extended CDB AHS appended to the first 16 bytes); it replaces CDB.
	ExtCDB []byte
	// LUN is the 8-byte LUN field, for routing through a LUNMap; Channel.Execute on
	// one LU ignores it.
	LUN [scsi.LUNLen]byte
	// Nexus is the I_T_L nexus the command came through (LU.Nexus). A LUNMap's
	// MapChannel fills it from the Session; Channel.Execute requires it.
	Nexus *Nexus
	// Attr is the task attribute (informational: tasks run as SIMPLE).
	Attr TaskAttr
	// ExpectedLen is the transport's expected data transfer length (iSCSI EDTL). It
	// matters where the data length is fixed by the command, not by a transfer length:
	// COMPARE AND WRITE and WRITE SAME refuse a mismatch.
	ExpectedLen uint32
	// Data is the data buffer: for data-out commands the bytes the transport received
	// (len = bytes received, at most what Prepare asked for); for data-in commands a
	// buffer of ExpectedLen bytes that the LU fills from the start. Off-heap memory
	// (engine/mem) lets the bdev read and write it directly.
	Data []byte
	// FixedBuf is 1 + the io_uring fixed buffer index that holds all of Data (see
	// bdev.IO.FixedBuf); 0 when unknown. Passed to the bdev for reads and writes of
	// Data.
	FixedBuf uint32
	// Done is called exactly once per Execute, on the channel's reactor, possibly
	// before Execute returns. Bind it once, when the task is made.
	Done func(*Task)

	// Status is the SCSI status byte.
	Status scsi.Status
	// SenseLen bytes of Sense hold the sense data of a CHECK CONDITION, in fixed or
	// descriptor format as the Control mode page's D_SENSE says.
	SenseLen uint8
	Sense    [SenseCap]byte
	// Produced is the command's SCSI data transfer length, from which the transport
	// computes residuals against ExpectedLen (RFC 7143 §11.4.5): for data-in commands
	// the bytes the device server produced, before truncation to len(Data) (Data holds
	// min(Produced, len(Data)) valid bytes); for data-out commands the bytes the
	// command asked for, also when it failed (libiscsi *Residuals check the residual of
	// a refused write).
	Produced uint64
	// Aborted says whether the task was aborted rather than run (see AbortReason);
	// Status is then TASK ABORTED.
	Aborted AbortReason

	x taskExec
}

// taskExec is a task's execution state, owned by the channel while the task runs.
type taskExec struct {
	ch    *Channel
	cdb   scsi.CDB
	state taskState
	// gen names this execution among the channel's (0: none), so that an answer meant
	// for an earlier one (the reservation manager's, after an abort) is recognised and
	// dropped even when the transport reset the task by assignment meanwhile.
	gen        uint64
	prev, next *Task // the channel's in-flight list
	inflight   bool
	abort      AbortReason // requested; applied at the next step boundary
	// writing marks a task whose writes may be in the bdev: range locks wait for the
	// overlapping ones (wlba..wend, in blocks).
	writing    bool
	wlba, wend uint64
	lba        uint64 // first block of the data phase
	blocks     uint64 // blocks of the data phase
	pos        uint64 // progress: blocks done (WRITE SAME), descriptor index (UNMAP)
	scratch    mem.Buf
	lock       *rangeLock
	unmap      scsi.UnmapList
	san        *sanitizeOp // the operation a SANITIZE with IMMED=0 waits for
}

// taskState is where a task is in its execution; each bdev completion moves it on.
type taskState uint8

const (
	taskStateIdle        taskState = iota
	taskStateBlocked               // a write waiting behind another task's range lock
	taskStateLocking               // acquiring the LU range lock (COMPARE AND WRITE, ORWRITE, WRITE ATOMIC)
	taskStateRead                  // READ into Data
	taskStateShortRead             // READ into scratch: Data is shorter than the blocks
	taskStateWrite                 // WRITE, WRITE AND VERIFY
	taskStateVerifyRead            // VERIFY BYTCHK 01b/11b: read to compare
	taskStateCAWRead               // COMPARE AND WRITE: read to compare
	taskStateCAWWrite              // COMPARE AND WRITE: write after a match
	taskStateORRead                // ORWRITE: read the old data
	taskStateORWrite               // ORWRITE: write the OR
	taskStateWriteSame             // WRITE SAME: one chunk, zeroes or unmap
	taskStateUnmap                 // UNMAP: one descriptor
	taskStateFlush                 // SYNCHRONIZE CACHE
	taskStateManager               // waiting for the reservation manager
	taskStateAtomicWrite           // WRITE ATOMIC: the write, under the range lock
	taskStateSanitize              // SANITIZE with IMMED=0: waiting for the operation
	taskStateLossWait              // waiting for the manager's answer to a nexus loss
	taskStateCopy                  // EXTENDED COPY: copying (its own bdev I/O)
	taskStateCount
)

var taskStateNames = [taskStateCount]string{"idle", "blocked", "locking", "read",
	"short read", "write", "verify read", "compare and write read",
	"compare and write write", "orwrite read", "orwrite write", "write same", "unmap",
	"flush", "manager", "atomic write", "sanitize", "nexus loss wait", "extended copy"}

// String names the state for logs and test failures.
func (s taskState) String() string {
	if s >= taskStateCount {
		return "task state " + strconv.Itoa(int(s))
	}
	return taskStateNames[s]
}

// cdbBytes returns the CDB to decode.
func (t *Task) cdbBytes() []byte {
	if t.ExtCDB != nil {
		return t.ExtCDB
	}
	return t.CDB[:]
}

// SetCDB copies b into CDB (or ExtCDB when longer than 16 bytes), for transports and
// tests that hold the CDB as a slice.
func (t *Task) SetCDB(b []byte) {
	if len(b) > len(t.CDB) {
		t.ExtCDB = b
		return
	}
	t.ExtCDB = nil
	n := copy(t.CDB[:], b)
	clear(t.CDB[n:])
}

// State returns the task's execution state, for diagnostics.
//
// Preconditions: on the channel's reactor.
func (t *Task) State() string { return t.x.state.String() }

// Prepare tells the transport, before any data-out arrives, which way the command's
// data moves and how many bytes the command transfers (SCSI's data transfer length),
// so that it can size R2Ts and buffers and detect overflow and underflow against EDTL.
// For data-in commands with an allocation length it is an upper bound. A CDB that
// does not decode reports DirNone: Execute will answer it without data.
func Prepare(cdb []byte, blockSize uint32) (scsi.Direction, uint64) {
	c, err := scsi.DecodeCDB(cdb)
	if err != nil {
		return scsi.DirNone, 0
	}
	return c.DataLength(blockSize)
}

// Preallocated sense errors this package adds to engine/proto/scsi's. Read-only.
var (
	// errInvalidIU: ILLEGAL REQUEST, INVALID FIELD IN COMMAND INFORMATION UNIT: the
	// data-out the transport delivered does not match what the command needs (FCP-4
	// and libiscsi *Residuals: refuse rather than write a partial block).
	errInvalidIU = scsi.NewSenseError(scsi.SenseKeyIllegalRequest,
		scsi.ASCInvalidFieldInInformationUnit, scsi.SenseSpecific{})
	// errSpaceAllocation: DATA PROTECT, SPACE ALLOCATION FAILED WRITE PROTECT: the
	// backing store is full (SBC-3 §4.7.3.7, thin provisioning).
	errSpaceAllocation = scsi.NewSenseError(scsi.SenseKeyDataProtect,
		scsi.ASCSpaceAllocationFailedWP, scsi.SenseSpecific{})
	// errAbortedCommand: ABORTED COMMAND: the bdev channel went away under the I/O;
	// the initiator retries.
	errAbortedCommand = scsi.NewSenseError(scsi.SenseKeyAbortedCommand,
		scsi.ASCNoAdditionalSense, scsi.SenseSpecific{})
	// errTargetPortGroups: REPORT TARGET PORT GROUPS with TPGS=0 is INVALID FIELD IN
	// CDB at the service action, which libiscsi reads as "not implemented".
	errTargetPortGroups = scsi.InvalidFieldInCDB(1, 4)
)
