package scsi

import (
	"bytes"
	"testing"
)

// decodedOpcodes lists every (opcode, service action) DecodeCDB accepts.
func decodedOpcodes() [][2]uint16 {
	var out [][2]uint16
	for op := 0; op < 256; op++ {
		if blockLayouts[op].length == 0 && otherLengths[op] == 0 || Opcode(op) == OpVariableLength {
			continue
		}
		if !Opcode(op).HasServiceActions() {
			out = append(out, [2]uint16{uint16(op), 0})
			continue
		}
		for sa := uint16(0); sa < 0x20; sa++ {
			b := bhs(byte(op), byte(sa), 0x01) // PROUT: a valid TYPE
			if _, err := DecodeCDB(b); err == nil {
				out = append(out, [2]uint16{uint16(op), sa})
			}
		}
	}
	return out
}

func TestStandardUsageMatchesDecoder(t *testing.T) {
	n := 0
	for _, os := range decodedOpcodes() {
		op, sa := Opcode(os[0]), os[1]
		d, ok := NewCommandDescriptor(op, sa, true)
		if !ok {
			t.Errorf("%v/%02x: decoded but no usage data", op, sa)
			continue
		}
		n++
		// libiscsi ReportSupportedOpcodes.OneCommand: CDB size non-zero and usage byte 0
		// is the opcode; the usage data is as long as the CDB.
		if len(d.Usage) != op.CDBLen() || d.Usage[0] != byte(op) {
			t.Errorf("%v/%02x: usage % x", op, sa, d.Usage)
		}
		if op.HasServiceActions() && d.Usage[1]&0x1F != byte(sa) {
			t.Errorf("%v/%02x: service action not in usage byte 1", op, sa)
		}
		// Every bit the usage data claims, set in a CDB, still decodes (the decoder reads
		// those bits rather than rejecting them), reserved and NACA aside.
		b := append([]byte(nil), d.Usage...)
		if _, err := DecodeCDB(b); err != nil && !isFieldValueError(op) {
			t.Errorf("%v/%02x: all usage bits set: %v", op, sa, err)
		}
	}
	if n < 45 {
		t.Fatalf("only %d commands", n)
	}
	if _, ok := NewCommandDescriptor(OpMaintenanceOut, 0, true); ok {
		t.Fatal("MAINTENANCE OUT is not decoded")
	}
}

// isFieldValueError: commands whose all-ones fields are invalid values (an LBA with
// PMI=0 aside, BYTCHK 11b on WRITE AND VERIFY, ANCHOR semantics, SELECT REPORT FFh, a
// reserved TYPE, REPORTING OPTIONS 111b, CMDDT).
func isFieldValueError(op Opcode) bool {
	switch op {
	case OpInquiry, OpWriteAndVerify10, OpWriteAndVerify12, OpWriteAndVerify16, OpVerify10,
		OpVerify12, OpVerify16, OpReportLUNs, OpPersistentReserveOut, OpMaintenanceIn,
		OpReadDefectData10, OpReadDefectData12:
		return true
	}
	return false
}

func TestDPOFUAUsage(t *testing.T) {
	for _, tc := range []struct {
		op      Opcode
		on, off byte
	}{
		{OpRead10, 0xF8, 0xE0},
		{OpWrite16, 0xF8, 0xE0},
		{OpCompareAndWrite, 0xF8, 0xE0},
		{OpOrWrite16, 0xF8, 0xE0},
		{OpVerify10, 0xF6, 0xE6}, // libiscsi Verify10.Dpo reads bit 4 only
		{OpWriteAndVerify12, 0xF6, 0xE6},
		{OpWriteSame16, 0xF9, 0xF9},   // no DPO/FUA: ANCHOR and UNMAP stay
		{OpWriteAtomic16, 0xF8, 0xE0}, // libiscsi WriteAtomic16.DpoFua
	} {
		on, _ := NewCommandDescriptor(tc.op, 0, true)
		off, _ := NewCommandDescriptor(tc.op, 0, false)
		if on.Usage[1] != tc.on || off.Usage[1] != tc.off {
			t.Errorf("%v: %02x/%02x, want %02x/%02x", tc.op, on.Usage[1], off.Usage[1], tc.on, tc.off)
		}
	}
}

func table(t *testing.T) CommandTable {
	var tab CommandTable
	for _, os := range [][2]uint16{{uint16(OpRead10), 0}, {uint16(OpServiceActionIn16),
		uint16(SAReadCapacity16)}, {uint16(OpServiceActionIn16), uint16(SAGetLBAStatus)},
		{uint16(OpInquiry), 0}} {
		d, ok := NewCommandDescriptor(Opcode(os[0]), os[1], true)
		if !ok {
			t.Fatal(os)
		}
		d.NominalTimeoutSec, d.RecommendedTimeoutSec, d.CommandSpecific = 1, 30, 7
		tab = append(tab, d)
	}
	return tab
}

func rsoc(t *testing.T, tab CommandTable, rctd bool, opts uint8, op Opcode,
	sa uint16) ([]byte, error) {
	t.Helper()
	c := CDB{Opcode: OpMaintenanceIn, ServiceAction: SAReportSupportedOpcodes, RCTD: rctd,
		ReportingOptions: opts, RequestedOpcode: op, RequestedServiceAction: sa}
	return tab.AppendReport(nil, &c)
}

func TestRSOCAll(t *testing.T) {
	tab := table(t)
	b, err := rsoc(t, tab, false, RSOCAll, 0, 0)
	if err != nil || len(b) != 4+4*8 {
		t.Fatalf("%d bytes, %v", len(b), err)
	}
	// SPC-4 §6.35.2: COMMAND DATA LENGTH, then OPCODE @0, SERVICE ACTION @2, SERVACTV
	// @5 bit 0, CDB LENGTH @6; SERVACTV=0 descriptors carry service action 0.
	checkFields(t, "all", b, []field{
		{0, []byte{0, 0, 0, 32}},
		{4, []byte{0x28, 0, 0, 0, 0, 0x00, 0, 10}},
		{12, []byte{0x9E, 0, 0, 0x10, 0, 0x01, 0, 16}},
		{20, []byte{0x9E, 0, 0, 0x12, 0, 0x01, 0, 16}},
		{28, []byte{0x12, 0, 0, 0, 0, 0x00, 0, 6}},
	})
	b, _ = rsoc(t, tab, true, RSOCAll, 0, 0)
	// libiscsi ReportSupportedOpcodes.RCTD: CTDP on every descriptor, timeouts
	// descriptor length 0Ah.
	if len(b) != 4+4*20 || be.Uint32(b) != 80 {
		t.Fatalf("rctd length %d", len(b))
	}
	checkFields(t, "all rctd", b, []field{{4, []byte{0x28, 0, 0, 0, 0, 0x02, 0, 10,
		0, 0x0A, 0, 7, 0, 0, 0, 1, 0, 0, 0, 30}}, {29, []byte{0x03}}})
}

func TestRSOCOneCommand(t *testing.T) {
	tab := table(t)
	b, err := rsoc(t, tab, false, RSOCOneCommand, OpRead10, 0)
	read10, _ := NewCommandDescriptor(OpRead10, 0, true)
	// SPC-4 §6.35.3: SUPPORT 011b @1, CDB SIZE @2, CDB USAGE DATA @4.
	if err != nil || !bytes.Equal(b, append([]byte{0, 0x03, 0, 10}, read10.Usage...)) {
		t.Fatalf("% x %v", b, err)
	}
	b, _ = rsoc(t, tab, true, RSOCOneCommandSA, OpServiceActionIn16, SAGetLBAStatus)
	if len(b) != 4+16+12 || b[1] != 0x83 || b[4] != 0x9E || b[5] != 0x12 || b[21] != 0x0A {
		t.Fatalf("one command sa rctd: % x", b)
	}
	b, _ = rsoc(t, tab, false, RSOCOneCommandOptionalSA, OpInquiry, 0x55)
	if b[1] != SupportStandard || b[4] != 0x12 {
		t.Fatalf("011b ignores the service action of a command without them: % x", b)
	}
	b, _ = rsoc(t, tab, false, RSOCOneCommand, OpWrite10, 0)
	if !bytes.Equal(b, []byte{0, SupportNotSupported, 0, 0}) {
		t.Fatalf("unsupported: % x", b)
	}
	b, _ = rsoc(t, tab, false, RSOCOneCommandSA, OpServiceActionIn16, 0x11)
	if b[1] != SupportNotSupported {
		t.Fatal("unsupported service action")
	}
	// libiscsi ReportSupportedOpcodes.OneCommand: 001b on an opcode with service
	// actions, and 010b on one without, are INVALID FIELD IN CDB.
	if _, err := rsoc(t, tab, false, RSOCOneCommand, OpServiceActionIn16, 0x10); err !=
		error(InvalidFieldInCDB(3, 7)) {
		t.Fatal(err)
	}
	if _, err := rsoc(t, tab, false, RSOCOneCommandSA, OpRead10, 0); err !=
		error(InvalidFieldInCDB(3, 7)) {
		t.Fatal(err)
	}
}

func TestTMFSupport(t *testing.T) {
	s := TMFSupport{AbortTask: true, AbortTaskSet: true, ClearTaskSet: true, LUReset: true,
		TargetReset: true, ITNexusReset: true, QueryTask: true, ClearACA: true,
		QueryTaskSet: true, QueryUnitAttention: true}
	if b := s.Append(nil, false); !bytes.Equal(b, []byte{0xFE, 0x07, 0, 0}) {
		t.Fatalf("% x", b)
	}
	b := (&TMFSupport{AbortTask: true, LUReset: true}).Append(nil, true)
	if len(b) != 16 || !bytes.Equal(b[:4], []byte{0x88, 0, 0, 0x0C}) {
		t.Fatalf("repd % x", b)
	}
}
