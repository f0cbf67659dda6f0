package scsi

// REPORTING OPTIONS of REPORT SUPPORTED OPERATION CODES @2 bits 2:0 (SPC-4 table
// "REPORTING OPTIONS field").
const (
	RSOCAll                  uint8 = 0x0 // every command, all_commands format
	RSOCOneCommand           uint8 = 0x1 // one opcode without service actions
	RSOCOneCommandSA         uint8 = 0x2 // one opcode and service action
	RSOCOneCommandOptionalSA uint8 = 0x3 // one opcode, service action if it has them
)

// SUPPORT values of the one_command format @1 bits 2:0 (SPC-4 table "SUPPORT values").
const (
	SupportNotAvailable = 0x0
	SupportNotSupported = 0x1
	SupportStandard     = 0x3
	SupportVendor       = 0x5
)

// CommandDescriptor describes one supported command for REPORT SUPPORTED OPERATION
// CODES (SPC-4 §6.35). Build it with [NewCommandDescriptor] for the commands DecodeCDB
// knows, so the usage data matches what the decoder reads.
type CommandDescriptor struct {
	Opcode        Opcode
	ServiceAction uint16 // meaningful when Opcode.HasServiceActions()
	// Usage is the CDB USAGE DATA, CDB length bytes: the opcode, then a mask of the bits
	// the device server evaluates (the service action bytes hold its value).
	Usage []byte
	// Command timeouts descriptor values, reported with RCTD=1.
	CommandSpecific       uint8
	NominalTimeoutSec     uint32
	RecommendedTimeoutSec uint32
}

// CommandTable is the set of commands a logical unit supports, in the order REPORT
// SUPPORTED OPERATION CODES lists them.
type CommandTable []CommandDescriptor

// Fixed sizes of REPORT SUPPORTED OPERATION CODES data (SPC-4 §6.35.2, §6.35.3).
const (
	rsocDescriptorLen = 8  // command descriptor of the all_commands format
	rsocTimeoutsLen   = 12 // command timeouts descriptor, DESCRIPTOR LENGTH 0Ah
)

// AppendReport appends REPORT SUPPORTED OPERATION CODES parameter data for the decoded
// CDB c (RCTD, REPORTING OPTIONS, REQUESTED OPERATION CODE/SERVICE ACTION). Errors are
// INVALID FIELD IN CDB @3 for REPORTING OPTIONS 001b on an opcode with service actions
// and 010b on one without (SPC-4 §6.35.1; libiscsi ReportSupportedOpcodes.OneCommand).
func (t CommandTable) AppendReport(b []byte, c *CDB) ([]byte, error) {
	if c.ReportingOptions == RSOCAll {
		return t.appendAll(b, c.RCTD), nil
	}
	op, sa := c.RequestedOpcode, c.RequestedServiceAction
	switch c.ReportingOptions {
	case RSOCOneCommand:
		if op.HasServiceActions() {
			return b, InvalidFieldInCDB(3, 7)
		}
		sa = 0
	case RSOCOneCommandSA:
		if !op.HasServiceActions() {
			return b, InvalidFieldInCDB(3, 7)
		}
	default:
		if !op.HasServiceActions() {
			sa = 0
		}
	}
	return t.appendOne(b, t.find(op, sa), c.RCTD), nil
}

func (t CommandTable) find(op Opcode, sa uint16) *CommandDescriptor {
	for i := range t {
		if t[i].Opcode == op && t[i].ServiceAction == sa {
			return &t[i]
		}
	}
	return nil
}

// appendAll writes the all_commands format: COMMAND DATA LENGTH @0, then per command
// OPERATION CODE @0, SERVICE ACTION @2, CTDP/SERVACTV @5, CDB LENGTH @6 and, with
// RCTD, a command timeouts descriptor (libiscsi ReportSupportedOpcodes.RCTD wants CTDP
// set on all of them then, and on none without).
func (t CommandTable) appendAll(b []byte, rctd bool) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	for i := range t {
		d := &t[i]
		sa := uint16(0)
		if d.Opcode.HasServiceActions() {
			sa = d.ServiceAction
		}
		b = append(b, byte(d.Opcode), 0)
		b = be.AppendUint16(b, sa)
		b = append(b, 0, bit(rctd, 1)|bit(d.Opcode.HasServiceActions(), 0))
		b = be.AppendUint16(b, uint16(len(d.Usage)))
		if rctd {
			b = d.appendTimeouts(b)
		}
	}
	be.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

// appendTimeouts writes a command timeouts descriptor (SPC-4 §6.35.4): DESCRIPTOR
// LENGTH 0Ah @0, COMMAND SPECIFIC @3, NOMINAL @4, RECOMMENDED @8.
func (d *CommandDescriptor) appendTimeouts(b []byte) []byte {
	b = append(b, 0, rsocTimeoutsLen-2, 0, d.CommandSpecific)
	b = be.AppendUint32(b, d.NominalTimeoutSec)
	return be.AppendUint32(b, d.RecommendedTimeoutSec)
}

// appendOne writes the one_command format: CTDP (@1 bit 7) and SUPPORT @1, CDB SIZE
// @2, CDB USAGE DATA @4 and, with RCTD, the timeouts. An unsupported command reports
// SUPPORT 001b and CDB SIZE 0.
func (t CommandTable) appendOne(b []byte, d *CommandDescriptor, rctd bool) []byte {
	if d == nil {
		return append(b, 0, SupportNotSupported, 0, 0)
	}
	b = append(b, 0, bit(rctd, 7)|SupportStandard)
	b = be.AppendUint16(b, uint16(len(d.Usage)))
	b = append(b, d.Usage...)
	if rctd {
		b = d.appendTimeouts(b)
	}
	return b
}

// usage is a CDB USAGE DATA template; byte 0 is the opcode, and for commands with
// service actions byte 1 holds the service action.
type usage struct {
	op   Opcode
	sa   uint16
	bits []byte // bytes 1.. of the usage data
}

// ctlUsage is the CONTROL byte usage: NACA is refused, not supported, so no bit is
// claimed (SPC-4 §6.35.3).
const ctlUsage = 0x00

var f4 = []byte{0xFF, 0xFF, 0xFF, 0xFF}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// standardUsage lists the usage data of every command DecodeCDB decodes, read off the
// decoder's field layout: a bit is set when the decoder (or a limits.go check) looks at
// it. DPO/FUA bits are present here and cleared by NewCommandDescriptor when DPOFUA=0.
var standardUsage = []usage{
	{OpTestUnitReady, 0, []byte{0, 0, 0, 0, ctlUsage}},
	{OpRequestSense, 0, []byte{0x01, 0, 0, 0xFF, ctlUsage}},
	{OpRead6, 0, []byte{0x1F, 0xFF, 0xFF, 0xFF, ctlUsage}},
	{OpWrite6, 0, []byte{0x1F, 0xFF, 0xFF, 0xFF, ctlUsage}},
	{OpInquiry, 0, []byte{0x03, 0xFF, 0xFF, 0xFF, ctlUsage}},
	{OpModeSelect6, 0, []byte{0x11, 0, 0, 0xFF, ctlUsage}},
	{OpReserve6, 0, []byte{0, 0, 0, 0, ctlUsage}},
	{OpRelease6, 0, []byte{0, 0, 0, 0, ctlUsage}},
	{OpModeSense6, 0, []byte{0x08, 0xFF, 0xFF, 0xFF, ctlUsage}},
	{OpStartStopUnit, 0, []byte{0x01, 0, 0x0F, 0xF7, ctlUsage}},
	{OpPreventAllowRemoval, 0, []byte{0, 0, 0, 0x03, ctlUsage}},
	{OpReadCapacity10, 0, cat([]byte{0}, f4, []byte{0, 0, 0x01, ctlUsage})},
	{OpRead10, 0, cat([]byte{0xF8}, f4, []byte{0x1F, 0xFF, 0xFF, ctlUsage})},
	{OpWrite10, 0, cat([]byte{0xF8}, f4, []byte{0x1F, 0xFF, 0xFF, ctlUsage})},
	{OpWriteAndVerify10, 0, cat([]byte{0xF6}, f4, []byte{0x1F, 0xFF, 0xFF, ctlUsage})},
	{OpVerify10, 0, cat([]byte{0xF6}, f4, []byte{0x1F, 0xFF, 0xFF, ctlUsage})},
	{OpPreFetch10, 0, cat([]byte{0x02}, f4, []byte{0x1F, 0xFF, 0xFF, ctlUsage})},
	{OpSynchronizeCache10, 0, cat([]byte{0x02}, f4, []byte{0x1F, 0xFF, 0xFF, ctlUsage})},
	{OpWriteSame10, 0, cat([]byte{0xF8}, f4, []byte{0x1F, 0xFF, 0xFF, ctlUsage})},
	{OpUnmap, 0, []byte{0x01, 0, 0, 0, 0, 0x1F, 0xFF, 0xFF, ctlUsage}},
	{OpModeSelect10, 0, []byte{0x11, 0, 0, 0, 0, 0, 0xFF, 0xFF, ctlUsage}},
	{OpReserve10, 0, []byte{0x12, 0xFF, 0, 0, 0, 0, 0xFF, 0xFF, ctlUsage}},
	{OpRelease10, 0, []byte{0x12, 0xFF, 0, 0, 0, 0, 0xFF, 0xFF, ctlUsage}},
	{OpModeSense10, 0, []byte{0x18, 0xFF, 0xFF, 0, 0, 0, 0xFF, 0xFF, ctlUsage}},
	{OpRead16, 0, cat([]byte{0xF8}, f4, f4, f4, []byte{0x1F, ctlUsage})},
	{OpCompareAndWrite, 0, cat([]byte{0xF8}, f4, f4, []byte{0, 0, 0, 0xFF, 0x1F, ctlUsage})},
	{OpWrite16, 0, cat([]byte{0xF8}, f4, f4, f4, []byte{0x1F, ctlUsage})},
	{OpOrWrite16, 0, cat([]byte{0xF8}, f4, f4, f4, []byte{0x1F, ctlUsage})},
	{OpWriteAndVerify16, 0, cat([]byte{0xF6}, f4, f4, f4, []byte{0x1F, ctlUsage})},
	{OpVerify16, 0, cat([]byte{0xF6}, f4, f4, f4, []byte{0x1F, ctlUsage})},
	{OpPreFetch16, 0, cat([]byte{0x02}, f4, f4, f4, []byte{0x1F, ctlUsage})},
	{OpSynchronizeCache16, 0, cat([]byte{0x02}, f4, f4, f4, []byte{0x1F, ctlUsage})},
	{OpWriteSame16, 0, cat([]byte{0xF9}, f4, f4, f4, []byte{0x1F, ctlUsage})},
	{OpReportLUNs, 0, cat([]byte{0, 0xFF, 0, 0, 0}, f4, []byte{0, ctlUsage})},
	{OpRead12, 0, cat([]byte{0xF8}, f4, f4, []byte{0x1F, ctlUsage})},
	{OpWrite12, 0, cat([]byte{0xF8}, f4, f4, []byte{0x1F, ctlUsage})},
	{OpWriteAndVerify12, 0, cat([]byte{0xF6}, f4, f4, []byte{0x1F, ctlUsage})},
	{OpVerify12, 0, cat([]byte{0xF6}, f4, f4, []byte{0x1F, ctlUsage})},
	{OpWriteAtomic16, 0, cat([]byte{0xF8}, f4, f4, f4, []byte{0x1F, ctlUsage})},
	{OpReadDefectData10, 0, []byte{0, 0x1F, 0, 0, 0, 0, 0xFF, 0xFF, ctlUsage}},
	{OpReadDefectData12, 0, cat([]byte{0x1F}, f4, f4, []byte{0, ctlUsage})},
}

// saUsage returns the usage data of the service-action commands: the service action
// value in byte 1 (SPC-4 §6.35.3) and the mask of the rest.
func saUsage(op Opcode, sa uint16) []byte {
	switch op {
	case OpPersistentReserveIn:
		if sa <= uint16(PRInReadFullStatus) {
			return []byte{byte(op), byte(sa), 0, 0, 0, 0, 0, 0xFF, 0xFF, ctlUsage}
		}
	case OpPersistentReserveOut:
		if sa <= uint16(PROutRegisterAndMove) {
			return cat([]byte{byte(op), byte(sa), 0xFF, 0, 0}, f4, []byte{ctlUsage})
		}
	case OpServiceActionIn16:
		switch sa {
		case SAReadCapacity16:
			return cat([]byte{byte(op), byte(sa)}, f4, f4, f4, []byte{0x01, ctlUsage})
		case SAGetLBAStatus:
			return cat([]byte{byte(op), byte(sa)}, f4, f4, f4, []byte{0, ctlUsage})
		}
	case OpSanitize:
		switch sa {
		case SASanitizeOverwrite, SASanitizeBlockErase, SASanitizeCryptoErase,
			SASanitizeExitFailureMode:
			// IMMED @1 bit 7 and AUSE @1 bit 5 share the service action's byte.
			return []byte{byte(op), 0xA0 | byte(sa), 0, 0, 0, 0, 0, 0xFF, 0xFF, ctlUsage}
		}
	case OpExtendedCopy:
		if sa == SAExtendedCopyLID1 {
			return cat([]byte{byte(op), byte(sa), 0, 0, 0, 0, 0, 0, 0, 0}, f4, []byte{0, ctlUsage})
		}
	case OpReceiveCopyResults:
		switch sa {
		case SACopyStatus, SACopyReceiveData, SACopyOperatingParams, SACopyFailedSegments:
			return cat([]byte{byte(op), byte(sa), 0xFF, 0, 0, 0, 0, 0, 0, 0}, f4, []byte{0, ctlUsage})
		}
	case OpMaintenanceIn:
		switch sa {
		case SAReportTargetPortGroups:
			return cat([]byte{byte(op), byte(sa), 0, 0, 0, 0}, f4, []byte{0, ctlUsage})
		case SAReportSupportedOpcodes:
			return cat([]byte{byte(op), byte(sa), 0x87, 0xFF, 0xFF, 0xFF}, f4,
				[]byte{0, ctlUsage})
		case SAReportSupportedTMFs:
			return cat([]byte{byte(op), byte(sa), 0x80, 0, 0, 0}, f4, []byte{0, ctlUsage})
		}
	}
	return nil
}

// NewCommandDescriptor returns the descriptor of a command DecodeCDB decodes, with
// usage data matching the decoder. With dpofua false, the DPO and FUA bits are cleared
// from the usage data, as libiscsi *.DpoFua expect when MODE SENSE reports DPOFUA=0.
// ok is false for commands DecodeCDB does not know.
func NewCommandDescriptor(op Opcode, sa uint16, dpofua bool) (CommandDescriptor, bool) {
	var u []byte
	if op.HasServiceActions() {
		u = saUsage(op, sa)
	} else {
		sa = 0
		for _, s := range standardUsage {
			if s.op == op {
				u = append([]byte{byte(op)}, s.bits...)
			}
		}
	}
	if u == nil {
		return CommandDescriptor{}, false
	}
	if !dpofua && blockLayouts[op].byte1&(b1DPO|b1FUA) != 0 {
		u[1] &^= 0x18
	}
	return CommandDescriptor{Opcode: op, ServiceAction: sa, Usage: u}, true
}

// TMFSupport is REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS data (SPC-4 §6.37).
type TMFSupport struct {
	AbortTask          bool // @0 bit 7 ATS
	AbortTaskSet       bool // @0 bit 6 ATSS
	ClearACA           bool // @0 bit 5 CACAS
	ClearTaskSet       bool // @0 bit 4 CTSS
	LUReset            bool // @0 bit 3 LURS
	QueryTask          bool // @0 bit 2 QTS
	TargetReset        bool // @0 bit 1 TRS
	QueryUnitAttention bool // @1 bit 2 QUAS
	QueryTaskSet       bool // @1 bit 1 QTSS
	ITNexusReset       bool // @1 bit 0 ITNRS
}

// Append appends the 4-byte basic format, or with repd the 16-byte extended format whose
// ADDITIONAL DATA LENGTH @3 is 0Ch (timeouts not reported).
func (s *TMFSupport) Append(b []byte, repd bool) []byte {
	b = append(b,
		bit(s.AbortTask, 7)|bit(s.AbortTaskSet, 6)|bit(s.ClearACA, 5)|bit(s.ClearTaskSet, 4)|
			bit(s.LUReset, 3)|bit(s.QueryTask, 2)|bit(s.TargetReset, 1),
		bit(s.QueryUnitAttention, 2)|bit(s.QueryTaskSet, 1)|bit(s.ITNexusReset, 0), 0, 0)
	if repd {
		b[len(b)-1] = 0x0C
		b = append(b, make([]byte, 12)...)
	}
	return b
}
