// Package iscsi owns the iSCSI wire format and login negotiation of RFC 7143: the
// 48-byte Basic Header Segment and a typed view of every PDU, Additional Header
// Segments, the framing of a PDU (AHS, digests, padding) and its length checks, CRC32C
// digests, the key=value text of Login and Text PDUs with C-bit continuation, the
// declarative table of every negotiation key, the negotiation itself, CHAP (RFC 1994,
// RFC 7143 §12.1.3) and the target's login state machine.
//
// Who calls it: the iSCSI target (engine/iscsi), which reads each connection into a
// receive buffer on a polling reactor and parses PDUs incrementally, and tests or
// tools that play an initiator. SCSI CDBs and sense data are engine/proto/scsi's; this
// package treats the LUN, the CDB and the SCSI status as opaque bytes.
//
// What it must never do:
//   - I/O of any kind, goroutines, timers, clocks, logging, or touching reactor state.
//     Callers hand in byte arrays and slices and get values back; the target's
//     decisions during login come through [LoginHooks], and CHAP randomness through
//     an io.Reader.
//   - Import anything outside the standard library (engine/proto is a leaf).
//   - Allocate on the hot path. BHS decoding and encoding for every PDU type, [BHS.Layout],
//     AHS parsing, digests and the sense-data helpers write into caller memory and
//     return preallocated errors; tests assert testing.AllocsPerRun == 0 for them.
//     Login, text and negotiation are control path and may allocate.
//
// Files, by area:
//   - pdu_types.go: opcodes, task attributes, login stages, TMF functions and
//     responses, Reject reasons, Logout reasons and responses, Async events, SNACK types.
//   - bhs.go: the generic BHS view. pdu_scsi.go: SCSI Command and Response, Data-In,
//     Data-Out, R2T, sense data and residuals. pdu_ctrl.go: NOP, TMF, Text, Logout,
//     SNACK, Async Message, Reject. pdu_login.go: Login Request and Response.
//   - ahs.go: AHS parsing and encoding. digest.go: CRC32C. layout.go: PDU framing and
//     its checks, as *PDUError values that name the Reject reason to send.
//   - text.go: key=value pairs and value encodings. continuation.go: C-bit assembly
//     and splitting. sendtargets.go: SendTargets values, iSCSI names, TargetAddress.
//   - keys.go: the key table. params.go: the target's Config and the negotiated
//     Params. negotiate.go: the Negotiator. chap.go: CHAP. status.go: login statuses.
//     login.go and login_stage.go: the login state machine. sn.go: serial numbers.
//     errors.go: ErrXxx sentinels, *PDUError and *LoginError.
//
// Byte order is big-endian except the digests, which go out least significant byte
// first. Comments cite byte offsets ("@24" is byte 24 of the BHS) and sections of RFC
// 7143 (iSCSI, consolidated); RFC 1994 (CHAP), RFC 7144 (iSCSIProtocolLevel) and RFC
// 7145 (iSER keys) where named. Where the RFC leaves room, the choices follow what
// SPDK and LIO accept and what open-iscsi and libiscsi send; each says so where it is
// made.
//
// Protocol errors in a received PDU are *PDUError values carrying the Reject reason to
// answer with (or none, when the connection must be dropped); login failures are
// *LoginError values and [LoginReply] statuses the target puts in its Login Response.
package iscsi
