// Package scsi owns the SCSI wire formats a block target speaks: status codes, sense
// data (fixed and descriptor formats), command descriptor blocks and their decoding
// into one flat [CDB] value, and the parameter data the SPC-4/SBC-3 commands carry in
// both directions: standard INQUIRY data and the VPD pages 00h/80h/83h/86h/B0h/B1h/B2h,
// READ CAPACITY (10)/(16), GET LBA STATUS, MODE SENSE/MODE SELECT pages, REPORT LUNS and
// the 8-byte LUN field, UNMAP lists, PERSISTENT RESERVE IN/OUT data with iSCSI
// TransportIDs, REPORT SUPPORTED OPERATION CODES / TASK MANAGEMENT FUNCTIONS data, READ
// DEFECT DATA headers, the SANITIZE OVERWRITE parameter list, EXTENDED COPY(LID1)
// parameter lists and RECEIVE COPY RESULTS data, and the WRITE ATOMIC (16) checks
// against the SBC-4 atomic fields of the Block Limits page.
//
// Who calls it: the SCSI command layer (engine/scsi), which an iSCSI target
// (engine/iscsi) drives, and tests that play the initiator. Decoders exist for every
// structure a target receives (CDB, MODE SELECT list, UNMAP list, PROUT list,
// TransportID, LUN, SANITIZE OVERWRITE list, EXTENDED COPY list) and, for tests and
// fuzzing, for sense data; the encoders used by
// those round trips (for example [CDB.Append]) also serve tests that build commands.
//
// What it must never do:
//   - I/O of any kind, goroutines, timers, logging, or holding logical unit state. The
//     command layer owns the LU (its capacity, mode page values, reservations) and hands
//     this package plain values; this package hands back bytes or sense.
//   - Import anything outside the standard library (engine/proto is a leaf).
//   - Allocate on the per-I/O path. [DecodeCDB], the range and limit checks in
//     limits.go, and the sense encoders write into caller memory and return
//     preallocated errors (tests assert testing.AllocsPerRun == 0). Control-path codecs
//     (INQUIRY, VPD, MODE, PR, REPORT LUNS) append to a caller slice and may allocate
//     when it lacks capacity.
//
// Byte order is big-endian throughout. Comments cite byte offsets ("@8" is byte 8 of
// the structure) and the sections of the specifications they come from:
//   - "SPC-4" is SCSI Primary Commands-4 (T10/1731-D r37),
//   - "SBC-3" is SCSI Block Commands-3 (T10/BSR INCITS 514 r35; SBC-4 where noted),
//   - "SAM-5" is SCSI Architecture Model-5 (status codes, LUN formats).
//
// Section numbers drift between revisions; the table names and byte offsets are the
// stable references. Field checks follow what libiscsi's iscsi-test-cu expects of a
// target (sahlberg/libiscsi test-tool), and are never stricter than SPC-4 requires:
// reserved bits are not checked, because SPC-4 §4.4.2 does not require it and
// initiators set obsolete bits (libiscsi sends FUA_NV in WRITE(10) and expects GOOD).
// SANITIZE is the exception: it destroys the volume, so a CDB with a field the decoder
// does not know is refused rather than half understood.
//
// Protocol errors are answered on the wire, never returned as Go errors to a peer: a
// decoder failure is a [*SenseError] carrying the sense key, ASC/ASCQ and field pointer
// to put in a CHECK CONDITION response.
package scsi
