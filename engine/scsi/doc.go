// Package scsi is the SCSI block command set (SBC-3 over SPC-4) served from bdevs: the
// logical units a SCSI transport (engine/iscsi) exports. The wire formats come from
// engine/proto/scsi; this package owns the state behind them and runs each command on a
// reactor.
//
// # What it owns
//
//   - Task (task.go): one command, reused by the transport, and Prepare, which tells the
//     transport a command's data direction and length before its data-out arrives.
//   - LU (lu.go): one bdev exported as a logical unit, claimed with
//     bdev.ClaimSCSIExport. Its identity is the volume's (DESIGN.md: a volume owns its
//     identifiers): VPD 83h carries an NAA 6h IEEE Registered Extended designator made
//     of NAAOUI (a locally administered company ID) and the low 100 bits of the bdev's
//     NGUID, the bdev's EUI-64, a T10 vendor designator, and the target port's
//     relative port and SCSI name; VPD 80h's serial is the NGUID in hex. Mode pages
//     (Caching, Control, ...) are shared by all nexuses (SPC-4 allows it; a change raises
//     MODE PARAMETERS CHANGED on the others), so D_SENSE, the sense format, is the LU's;
//     WCE, D_SENSE and SWP are changeable. WCE=0 makes every write FUA, and SYNCHRONIZE
//     CACHE is a bdev flush, as with an NVMe volatile write cache. GET LBA STATUS reports
//     every block mapped: the bdev layer has no allocation map (see serviceActionIn);
//     the one exception is the state SANITIZE BLOCK ERASE leaves, every block
//     deallocated until the next write. The physical block is 4 KiB (READ CAPACITY(16)
//     LBPPBE 3 for 512-byte blocks), as the NVMe export of the volume says too.
//   - Nexus (nexus.go): an I_T_L nexus and its unit attention queue (POWER ON/RESET
//     first; MODE PARAMETERS CHANGED; RESERVATIONS PREEMPTED/RELEASED and REGISTRATIONS
//     PREEMPTED from reservation notices; REPORTED LUNS DATA HAS CHANGED). An atomic flag
//     makes the per-command check one load. Nexus.Lost reports the loss to the manager;
//     until it has answered, commands a reservation could refuse wait for the answer,
//     so none is refused by a SCSI-2 reservation the loss ended.
//   - Channel (channel.go, io_cmd.go, io_special.go, admin_cmd.go, pr.go): an LU on one
//     reactor. Execute decodes the CDB, reports a unit attention (except for INQUIRY,
//     REPORT LUNS and REQUEST SENSE, SAM-5 §5.14), checks reservation conflicts against
//     the volume's published reservation.View with each opcode's access class, and runs
//     the command: TEST UNIT READY, REQUEST SENSE, INQUIRY (standard, VPD 00h 80h 83h 86h
//     B0h B1h B2h), READ CAPACITY(10/16), GET LBA STATUS, MODE SENSE/SELECT(6/10),
//     REPORT LUNS, READ/WRITE(6/10/12/16), WRITE AND VERIFY, VERIFY, PRE-FETCH,
//     SYNCHRONIZE CACHE(10/16), UNMAP, WRITE SAME(10/16), COMPARE AND WRITE, ORWRITE(16),
//     WRITE ATOMIC(16), SANITIZE, EXTENDED COPY(LID1) and RECEIVE COPY RESULTS, READ
//     DEFECT DATA(10/12) (empty lists), REPORT SUPPORTED OPERATION CODES / TASK
//     MANAGEMENT FUNCTIONS, START STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL,
//     RESERVE/RELEASE(6/10) and PERSISTENT RESERVE IN/OUT.
//     Anything else is INVALID COMMAND OPERATION CODE; every error is CHECK CONDITION
//     with sense in the format D_SENSE selects. A write whose EDTL is short of its
//     transfer writes the whole blocks the EDTL holds (iSCSI overflow).
//   - Sanitize (sanitize.go): SANITIZE OVERWRITE and BLOCK ERASE run as an operation of
//     the LU on the reactor the command came to, holding the range lock over the whole
//     LU; meanwhile commands other than INQUIRY, REPORT LUNS and REQUEST SENSE are NOT
//     READY, SANITIZE IN PROGRESS with a progress indication. The operation outlives an
//     abort of its command, a reset and the loss of the connection; a failed one leaves
//     the LU in the sanitize failure mode. CRYPTOGRAPHIC ERASE is not offered.
//   - Copy manager (xcopy.go): EXTENDED COPY copies blocks between the LUs of the
//     command's LUNMap (identification target descriptors naming them by NAA or EUI-64,
//     block-to-block segments), each segment under the range lock of its destination;
//     COPY STATUS is kept per I_T nexus and list identifier for RECEIVE COPY RESULTS.
//   - Range locks (rangelock.go): COMPARE AND WRITE, ORWRITE and WRITE ATOMIC are atomic
//     with respect to every write of the LU on every reactor (WRITE ATOMIC's atomicity
//     against power loss is what one bdev I/O has: it is never split). The lock is SPDK's LBA range lock: it
//     visits each channel by reactor message and waits out the overlapping writes in
//     flight there; while it is held, each channel holds back new overlapping writes
//     on its own list. No mutex on the I/O path: with no lock held the check is a
//     length test.
//   - Reservations (pr.go, sink.go): PERSISTENT RESERVE OUT and RESERVE/RELEASE go to
//     the node's reservation manager (engine/reservation/manager) and complete when it
//     answers on the reactor (ErrRetryable: BUSY); PERSISTENT RESERVE IN reads the
//     volume's published state. One sink per manager turns notices into unit attentions
//     and drains preempted nexuses' tasks for PREEMPT AND ABORT. Without a manager the
//     LU answers these commands INVALID COMMAND OPERATION CODE.
//   - Task management: Channel.Abort (ABORT TASK) ends at once a write held back by a
//     range lock or a command waiting for the manager (whose decision may still take
//     effect; its answer is dropped); a task inside the bdev, or acquiring a range lock,
//     is waited out and completes aborted, its remaining steps skipped. LU.Reset
//     (LOGICAL UNIT RESET) aborts every task of the LU the same way, clears SCSI-2
//     reservations through the manager and raises 29h/00h on every nexus. Aborted tasks
//     carry an AbortReason: no response for the requesting nexus's own tasks, TASK
//     ABORTED for the others' (TAS=1).
//   - LUNMap, Session and MapChannel (lunmap.go): the LUs of one target device by LUN,
//     one I_T nexus's nexuses across them, and the map's channels on one reactor; REPORT
//     LUNS for the map and the answers for LUNs with no LU.
//
// # The transport's side
//
// Per target node: a LUNMap (NewLUNMap, Add, Remove); per reactor: a MapChannel (or an
// LU's Channel); per session: a Session (LUNMap.Session with the nexus's
// reservation.SCSINexus identity; Lost at logout or connection loss). Per command: a
// reused Task; Prepare (or LUNMap.Prepare) before data-out arrives gives the direction
// and the SCSI data length for R2Ts and residuals; Execute with Data filled (data-out)
// or sized to EDTL (data-in); Done gives Status, Sense, Produced (residuals) and
// Aborted. ABORT TASK: MapChannel.Abort; LOGICAL UNIT RESET: LU.Reset.
//
// # Who may call it
//
// The SCSI transports (engine/iscsi) and tests. Channels, MapChannels and executing
// Tasks belong to one reactor; LU, LUNMap, Session and Nexus are safe from any
// goroutine (control-path methods lock; what the I/O path reads is atomic or
// immutable).
//
// # What it must never do
//
// Block a reactor, allocate per 4 KiB READ/WRITE (TestDataPathAllocatesNothing asserts
// it), decide a reservation itself (only the manager changes reservation state), put a Go
// error on the wire (every outcome is a SCSI status), or import a transport
// (engine/nvmf, engine/iscsi): the fence test ranks it with engine/reservation.
package scsi
