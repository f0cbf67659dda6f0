package nvme

import (
	"bytes"
	"errors"
	"testing"
)

func TestGetLogPageFields(t *testing.T) {
	// nvme-cli "get-log --log-id=0x70 --log-len=4096 --lpo=1024 --rae":
	g := GetLogPage{LID: LogDiscovery, RAE: true, NUMD: NUMDFor(4096), LPO: 1024}
	var s SQE
	s.SetOpcode(uint8(AdminGetLogPage))
	g.Put(&s)
	if s.CDW10() != 0x03FF8070 || s.CDW11() != 0 || s.CDW12() != 1024 || s.CDW13() != 0 {
		t.Fatalf("cdw10 %#x cdw11 %#x cdw12 %#x", s.CDW10(), s.CDW11(), s.CDW12())
	}
	if got := DecodeGetLogPage(&s); got != g || got.Len() != 4096 {
		t.Fatalf("%+v len %d", got, got.Len())
	}
	big := GetLogPage{LID: LogError, LSP: 0x7F, NUMD: 0x12345, LSI: 0xBEEF,
		LPO: 0x1_0000_0004, UUID: 0x7F, OT: true, CSI: CSIZNS}
	big.Put(&s)
	if s.CDW10() != 0x23457F01 || s.CDW11() != 0xBEEF0001 || s.CDW13() != 1 ||
		s.CDW14() != 0x0280007F {
		t.Fatalf("%#x %#x %#x", s.CDW10(), s.CDW11(), s.CDW14())
	}
	if got := DecodeGetLogPage(&s); got != big || got.Len() != 0x12346*4 {
		t.Fatalf("%+v", got)
	}
}

func TestErrorLogEntry(t *testing.T) {
	e := ErrorLogEntry{ErrorCount: 7, SQID: 1, CID: 0x10, Status: StatusInvalidField.WithDNR(),
		PEL: PEL(40, 0), LBA: 99, NSID: 1, TRTYPE: TRTypeTCP, CSI: 5, TTSI: 6}
	var b [ErrorLogEntryLen]byte
	e.MarshalTo(&b)
	if le.Uint16(b[12:]) != 0x8004 || b[14] != 40 || b[15] != 0 || b[29] != 3 ||
		b[32] != 5 || b[40] != 6 || le.Uint64(b[16:]) != 99 {
		t.Fatalf("%x", b)
	}
	var got ErrorLogEntry
	got.Unmarshal(&b)
	if got != e {
		t.Fatalf("%+v", got)
	}
}

func TestSMARTLog(t *testing.T) {
	s := SMARTLog{CriticalWarning: CriticalReadOnly, CompositeTemperature: KelvinFromCelsius(35),
		AvailableSpare: 100, AvailableSpareThreshold: 10, PercentageUsed: 1,
		DataUnitsRead: DataUnits(512000), DataUnitsWritten: DataUnits(512001),
		HostReadCommands: Uint128{Lo: 3}, PowerCycles: Uint128{Lo: 1},
		PowerOnHours: Uint128{Hi: 1}, ErrorLogEntries: Uint128{Lo: 9},
		WarningTempTime: 4, TMT2TotalTime: 8}
	s.TemperatureSensors[7] = 300
	if s.CompositeTemperature != 308 || s.DataUnitsRead.Lo != 1 || s.DataUnitsWritten.Lo != 2 {
		t.Fatal("helpers")
	}
	if DataUnits(0).Lo != 0 || DataUnits(1).Lo != 1 || DataUnits(512*1000*5).Lo != 5 {
		t.Fatal("DataUnits")
	}
	var b [SMARTLogLen]byte
	s.MarshalTo(&b)
	for _, tc := range []struct {
		off  int
		want []byte
	}{
		{0, []byte{0x08, 0x34, 0x01, 100, 10, 1}},
		{32, []byte{1}},
		{48, []byte{2}},
		{64, []byte{3}},
		{112, []byte{1}},
		{136, []byte{1}},
		{176, []byte{9}},
		{192, []byte{4}},
		{214, []byte{0x2C, 0x01}},
		{228, []byte{8}},
	} {
		if !bytes.Equal(b[tc.off:tc.off+len(tc.want)], tc.want) {
			t.Errorf("@%d = %x, want %x", tc.off, b[tc.off:tc.off+len(tc.want)], tc.want)
		}
	}
	var got SMARTLog
	got.Unmarshal(&b)
	if got != s {
		t.Fatalf("%+v", got)
	}
}

func TestFirmwareAndEffects(t *testing.T) {
	f := FirmwareSlotLog{AFI: 0x11}
	PutASCII(f.FRS[0][:], "0.1")
	var fb [FirmwareSlotLogLen]byte
	f.MarshalTo(&fb)
	if fb[0] != 0x11 || string(fb[8:16]) != "0.1     " || fb[16] != 0 {
		t.Fatalf("%x", fb[:24])
	}
	var fg FirmwareSlotLog
	fg.Unmarshal(&fb)
	if fg != f {
		t.Fatal("firmware")
	}

	var c CommandEffectsLog
	c.ACS[AdminIdentify] = EffectCSUPP
	c.IOCS[NVMWrite] = EffectCSUPP | EffectLBCC
	c.IOCS[NVMReservationRegister] = EffectCSUPP | EffectCSESameNS
	var cb [CommandEffectsLogLen]byte
	c.MarshalTo(&cb)
	if cb[24] != 1 || cb[1024+4] != 3 || le.Uint32(cb[1024+4*0x0D:]) != 0x10001 {
		t.Fatal("effects offsets")
	}
	var cg CommandEffectsLog
	cg.Unmarshal(&cb)
	if cg != c {
		t.Fatal("effects")
	}

	r := ResvNotifLog{Count: 5, Type: ResvNotifReservationReleased, Available: 2, NSID: 1}
	var rb [ResvNotifLogLen]byte
	r.MarshalTo(&rb)
	if rb[0] != 5 || rb[8] != 2 || rb[9] != 2 || rb[12] != 1 {
		t.Fatalf("%x", rb[:16])
	}
	var rg ResvNotifLog
	rg.Unmarshal(&rb)
	if rg != r {
		t.Fatal("resv notif")
	}
}

func discoveryEntry(nqn, addr string, sub uint8) DiscoveryLogEntry {
	e := DiscoveryLogEntry{TRTYPE: TRTypeTCP, ADRFAM: AdrFamIPv4, SUBTYPE: sub,
		TREQ: TREQSecureNotRequired, PORTID: 1, CNTLID: CNTLIDDynamic, ASQSZ: 32}
	PutASCII(e.TRSVCID[:], "4420")
	PutASCII(e.TRADDR[:], addr)
	PutNQN(e.SUBNQN[:], nqn)
	return e
}

func TestDiscoveryLog(t *testing.T) {
	es := []DiscoveryLogEntry{
		discoveryEntry(DiscoveryNQN, "127.0.0.1", SubTypeCurrentDiscovery),
		discoveryEntry("nqn.2024-01.dev.sluice:vol0", "127.0.0.1", SubTypeNVMe),
	}
	b := make([]byte, DiscoveryLogLen(2))
	if err := MarshalDiscoveryLog(b, 42, es); err != nil {
		t.Fatal(err)
	}
	if le.Uint64(b[0:]) != 42 || le.Uint64(b[8:]) != 2 || le.Uint16(b[16:]) != 0 {
		t.Fatal("header")
	}
	e1 := b[2048:]
	if e1[0] != 3 || e1[1] != 1 || e1[2] != 2 || e1[3] != 2 || e1[4] != 1 ||
		le.Uint16(e1[6:]) != 0xFFFF || e1[8] != 32 || string(e1[32:36]) != "4420" ||
		e1[36] != ' ' || NQNString(e1[256:512]) != "nqn.2024-01.dev.sluice:vol0" ||
		ASCIIString(e1[512:768]) != "127.0.0.1" {
		t.Fatalf("entry %x", e1[:64])
	}
	h, got, err := DecodeDiscoveryLog(b)
	if err != nil || h.GENCTR != 42 || h.NUMREC != 2 || len(got) != 2 ||
		got[0] != es[0] || got[1] != es[1] {
		t.Fatalf("%+v %v", h, err)
	}
	if _, _, err := DecodeDiscoveryLog(b[:2047]); !errors.Is(err, ErrDiscoveryLogTruncated) {
		t.Fatal(err)
	}
	if _, _, err := DecodeDiscoveryLog(b[:1000]); err != ErrShortBuffer {
		t.Fatal(err)
	}
	if err := MarshalDiscoveryLog(b[:3000], 1, es); err != ErrShortBuffer {
		t.Fatal(err)
	}
}

func TestAsyncEvent(t *testing.T) {
	if AENNSAttributeChanged.DW0() != 0x00040002 {
		t.Fatalf("%#x", AENNSAttributeChanged.DW0())
	}
	if AENDiscoveryLogChange.DW0() != 0x0070F002 || AENANAChange.DW0() != 0x000C0302 ||
		AENReservationLogAvailable.DW0() != 0x00800006 {
		t.Fatal("events")
	}
	if DecodeAsyncEvent(0xFF04_0002) != AENNSAttributeChanged {
		t.Fatal(DecodeAsyncEvent(0xFF040002))
	}
}
