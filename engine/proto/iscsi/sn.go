package iscsi

// Sequence numbers (CmdSN, StatSN, DataSN, R2TSN) compare with 32-bit serial number
// arithmetic (RFC 7143 §4.2.2.1, RFC 1982 with SERIAL_BITS = 32), so that windows keep
// working across the wrap from 0xffffffff to 0.

// SNLess reports a < b in serial number arithmetic. RFC 1982 leaves a and b exactly
// 2**31 apart undefined; here they compare as a > b.
func SNLess(a, b uint32) bool { return int32(a-b) < 0 }

// SNLessEq reports a <= b in serial number arithmetic.
func SNLessEq(a, b uint32) bool { return a == b || SNLess(a, b) }

// CmdSNInWindow reports whether a non-immediate command's CmdSN falls in the target's
// window, ExpCmdSN <= CmdSN <= MaxCmdSN; commands outside it are dropped silently
// (RFC 7143 §4.2.2.1, libiscsi's iSCSIcmdsn tests).
func CmdSNInWindow(cmdSN, expCmdSN, maxCmdSN uint32) bool {
	return SNLessEq(expCmdSN, cmdSN) && SNLessEq(cmdSN, maxCmdSN)
}
