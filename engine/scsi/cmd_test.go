package scsi

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"testing"

	"sluice/engine/proto/scsi"
)

var be = binary.BigEndian

// cmdCase is one row of TestCommands: a command and what it must answer.
type cmdCase struct {
	name  string
	req   req
	code  scsi.SenseCode // with key: CHECK CONDITION expected; none: GOOD
	key   scsi.SenseKey
	check func(*testing.T, *harness, *Task)
}

type checkFn = func(*testing.T, *harness, *Task)

// good and illegal build rows expecting GOOD and ILLEGAL REQUEST.
func good(name string, r req, check ...checkFn) cmdCase {
	c := cmdCase{name: name, req: r}
	if len(check) > 0 {
		c.check = check[0]
	}
	return c
}

func illegal(name string, r req, code scsi.SenseCode) cmdCase {
	return cmdCase{name: name, req: r, key: scsi.SenseKeyIllegalRequest, code: code}
}

// Request builders: no data, data-in of n bytes, data-out.
func none(c scsi.CDB) req             { return req{cdb: cdb(c)} }
func in(c scsi.CDB, n int) req        { return req{cdb: cdb(c), in: n} }
func out(c scsi.CDB, data []byte) req { return req{cdb: cdb(c), out: data} }
func vpd(page uint8) req              { return req{cdb: inquiryCDB(true, page, 1024), in: 1024} }
func blocks(n int) []byte             { return make([]byte, n*testBS) }

func sai16(sa uint16, lba uint64) req {
	return in(scsi.CDB{Opcode: scsi.OpServiceActionIn16, ServiceAction: sa, LBA: lba,
		AllocationLength: 32}, 32)
}

func maintIn(sa uint16, n uint32) req {
	return in(scsi.CDB{Opcode: scsi.OpMaintenanceIn, ServiceAction: sa, AllocationLength: n}, int(n))
}

func rd(op scsi.Opcode, lba uint64, n uint32) scsi.CDB {
	return scsi.CDB{Opcode: op, LBA: lba, TransferLength: n}
}

const (
	invalidField = scsi.ASCInvalidFieldInCDB
	lbaRange     = scsi.ASCLBAOutOfRange
	invalidIU    = scsi.ASCInvalidFieldInInformationUnit
)

// TestCommands runs one command per row against a fresh LU and checks status, sense
// and the data (the libiscsi expectations engine/proto/scsi lists, end to end).
func TestCommands(t *testing.T) {
	var cases []cmdCase
	cases = append(cases, inquiryCases()...)
	cases = append(cases, adminCases()...)
	cases = append(cases, blockCases()...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, hOpts{})
			nx := h.nexus(init1)
			tk := h.exec(nx, c.req)
			if c.key == 0 && c.code == 0 {
				wantGood(t, tk)
			} else {
				wantSense(t, tk, c.key, c.code)
			}
			if c.check != nil {
				c.check(t, h, tk)
			}
		})
	}
}

func inquiryCases() []cmdCase {
	return []cmdCase{
		good("inquiry standard", req{cdb: inquiryCDB(false, 0, 255), in: 255}, checkStandardInquiry),
		good("inquiry short allocation", req{cdb: inquiryCDB(false, 0, 5), in: 255}, wantProduced(5)),
		illegal("inquiry cmddt", req{cdb: []byte{0x12, 0x02, 0, 0, 255, 0}, in: 255}, invalidField),
		good("vpd supported", vpd(0x00), wantData(0, 0, 0, 7, 0x00, 0x80, 0x83, 0x86, 0xB0, 0xB1, 0xB2)),
		good("vpd serial", vpd(0x80), func(t *testing.T, h *harness, tk *Task) {
			nguid := h.lu.bdev.NGUID()
			if string(tk.Data[4:tk.Produced]) != hex.EncodeToString(nguid[:]) {
				t.Fatalf("serial %q", tk.Data[4:tk.Produced])
			}
		}),
		good("vpd device identification", vpd(0x83), checkDeviceID),
		good("vpd extended", vpd(0x86), wantProduced(64)),
		good("vpd block limits", vpd(0xB0), func(t *testing.T, h *harness, tk *Task) {
			d := tk.Data
			if tk.Produced != 64 || d[5] != 255 || be.Uint32(d[8:]) != (1<<20)/testBS ||
				be.Uint32(d[20:]) == 0 || be.Uint32(d[24:]) == 0 {
				t.Fatalf("block limits %x", d[:tk.Produced])
			}
			// UNMAP in 4 KiB physical blocks aligned at LBA 0 (UGAVALID), WRITE SAME up to
			// what WRITE SAME(10) can name, WRITE ATOMIC up to the transfer limit with no
			// alignment, granularity or boundary.
			if be.Uint32(d[28:]) != 8 || be.Uint32(d[32:]) != 0x80000000 ||
				be.Uint64(d[36:]) != 0xFFFF || be.Uint32(d[44:]) != (1<<20)/testBS ||
				!bytes.Equal(d[48:64], make([]byte, 16)) {
				t.Fatalf("block limits %x", d[:tk.Produced])
			}
		}),
		good("vpd characteristics", vpd(0xB1), func(t *testing.T, h *harness, tk *Task) {
			if be.Uint16(tk.Data[4:]) != 1 {
				t.Fatal("not solid state")
			}
			if tk.Data[7]>>6 != 1 { // malloc unmaps with zeros: BLOCK ERASE is offered
				t.Fatalf("WABEREQ %d", tk.Data[7]>>6)
			}
		}),
		// malloc: LBPU, LBPWS, LBPWS10, LBPRZ; thin provisioned.
		good("vpd provisioning", vpd(0xB2), wantData(0, 0xB2, 0, 4, 0, 0xE4, scsi.ProvisioningThin, 0)),
		illegal("vpd unknown page", vpd(0x87), invalidField),
	}
}

func adminCases() []cmdCase {
	var (
		rc10     = in(scsi.CDB{Opcode: scsi.OpReadCapacity10}, 8)
		sense    = in(scsi.CDB{Opcode: scsi.OpRequestSense, AllocationLength: 252}, 252)
		senseOK  = wantData(0x70, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
		allPages = in(scsi.CDB{Opcode: scsi.OpModeSense6, PageCode: scsi.ModePageAll, AllocationLength: 255}, 255)
		saved    = in(scsi.CDB{Opcode: scsi.OpModeSense10, PageCode: 0x3F, PageControl: 3, AllocationLength: 255}, 255)
		luns     = in(scsi.CDB{Opcode: scsi.OpReportLUNs, AllocationLength: 64}, 64)
		luns8    = in(scsi.CDB{Opcode: scsi.OpReportLUNs, AllocationLength: 8}, 8)
		prIn     = in(scsi.CDB{Opcode: scsi.OpPersistentReserveIn, AllocationLength: 64}, 64)
		noOp     = req{cdb: []byte{0xA4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}
	)
	return []cmdCase{
		good("test unit ready", none(scsi.CDB{Opcode: scsi.OpTestUnitReady})),
		good("start stop unit", none(scsi.CDB{Opcode: scsi.OpStartStopUnit, Start: true})),
		good("prevent allow", none(scsi.CDB{Opcode: scsi.OpPreventAllowRemoval, Prevent: 1})),
		good("read capacity 10", rc10, func(t *testing.T, h *harness, tk *Task) {
			if be.Uint32(tk.Data) != testBlocks-1 || be.Uint32(tk.Data[4:]) != testBS {
				t.Fatalf("read capacity 10 %x", tk.Data)
			}
		}),
		good("read capacity 16", sai16(scsi.SAReadCapacity16, 0), func(t *testing.T, h *harness, tk *Task) {
			if be.Uint64(tk.Data) != testBlocks-1 || be.Uint32(tk.Data[8:]) != testBS ||
				tk.Data[14]&0xC0 != 0xC0 { // LBPME, LBPRZ
				t.Fatalf("read capacity 16 %x", tk.Data)
			}
			// 8 logical blocks per 4 KiB physical block, the first aligned at LBA 0.
			if tk.Data[13]&0x0F != 3 || be.Uint16(tk.Data[14:])&0x3FFF != 0 {
				t.Fatalf("read capacity 16 %x", tk.Data)
			}
		}),
		good("get lba status", sai16(scsi.SAGetLBAStatus, 100), func(t *testing.T, h *harness, tk *Task) {
			if be.Uint64(tk.Data[8:]) != 100 || be.Uint32(tk.Data[16:]) != testBlocks-100 ||
				tk.Data[20] != scsi.LBAMapped {
				t.Fatalf("lba status %x", tk.Data)
			}
		}),
		illegal("get lba status past end", sai16(scsi.SAGetLBAStatus, testBlocks), lbaRange),
		good("mode sense all pages", allPages, func(t *testing.T, h *harness, tk *Task) {
			d := tk.Data // MODE DATA LENGTH, WP=0 and DPOFUA=1, an 8-byte block descriptor
			if int(d[0])+1 != int(tk.Produced) || d[2] != 0x10 || d[3] != 8 {
				t.Fatalf("mode sense %x", d[:tk.Produced])
			}
		}),
		illegal("mode sense saved", saved, scsi.ASCSavingParametersNotSupported),
		good("report luns", luns, wantData(0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
		illegal("report luns short allocation", luns8, invalidField),
		good("rsoc all", req{cdb: rsocCDB(scsi.RSOCAll, 0, 0), in: 4096}, func(t *testing.T, h *harness, tk *Task) {
			if n := be.Uint32(tk.Data); n == 0 || int(n)+4 != int(tk.Produced) {
				t.Fatalf("rsoc length %d of %d", n, tk.Produced)
			}
		}),
		good("rsoc one", req{cdb: rsocCDB(scsi.RSOCOneCommand, scsi.OpWriteSame16, 0), in: 64},
			func(t *testing.T, h *harness, tk *Task) {
				if tk.Data[1]&7 != scsi.SupportStandard || tk.Data[4] != byte(scsi.OpWriteSame16) {
					t.Fatalf("rsoc one %x", tk.Data[:tk.Produced])
				}
			}),
		good("rsoc one unsupported", req{cdb: rsocCDB(scsi.RSOCOneCommand, scsi.OpFormatUnit, 0), in: 64},
			wantData(0, scsi.SupportNotSupported, 0, 0)),
		illegal("rsoc sa without sa", req{cdb: rsocCDB(scsi.RSOCOneCommand, 0x9E, 0x10), in: 64}, invalidField),
		// libiscsi WriteAtomic16.DpoFua: DPO and FUA in the usage data, as MODE SENSE
		// says DPOFUA=1.
		good("rsoc write atomic", req{cdb: rsocCDB(scsi.RSOCOneCommand, scsi.OpWriteAtomic16, 0), in: 64},
			func(t *testing.T, h *harness, tk *Task) {
				if tk.Data[1]&7 != scsi.SupportStandard || tk.Data[5]&0x18 != 0x18 {
					t.Fatalf("rsoc write atomic %x", tk.Data[:tk.Produced])
				}
			}),
		// READ DEFECT DATA: no defects, both lists empty in the format asked for
		// (libiscsi ReadDefectData10/12).
		good("read defect data10", in(scsi.CDB{Opcode: scsi.OpReadDefectData10, ReqPList: true,
			ReqGList: true, DefectListFormat: scsi.DefectFormatLongBlock, AllocationLength: 32}, 32),
			wantData(0, 0x1B, 0, 0)),
		good("read defect data12", in(scsi.CDB{Opcode: scsi.OpReadDefectData12, AllocationLength: 32}, 32),
			wantData(0, 0, 0, 0, 0, 0, 0, 0)),
		good("read defect data10 short allocation", in(scsi.CDB{Opcode: scsi.OpReadDefectData10,
			AllocationLength: 2}, 2), wantData(0, 0)),
		good("report tmfs", maintIn(scsi.SAReportSupportedTMFs, 16), wantData(0xC8, 0, 0, 0)),
		illegal("report target port groups", maintIn(scsi.SAReportTargetPortGroups, 16), invalidField),
		illegal("unknown opcode", noOp, scsi.ASCInvalidCommandOperationCode),
		illegal("variable length", none(scsi.CDB{Opcode: scsi.OpVariableLength, Length: 12}),
			scsi.ASCInvalidCommandOperationCode),
		illegal("naca", req{cdb: []byte{0, 0, 0, 0, 0, 0x04}}, invalidField),
		good("request sense no sense", sense, senseOK),
		illegal("pr in without manager", prIn, scsi.ASCInvalidCommandOperationCode),
		illegal("reserve6 without manager", none(scsi.CDB{Opcode: scsi.OpReserve6}),
			scsi.ASCInvalidCommandOperationCode),
		good("mode select empty", none(scsi.CDB{Opcode: scsi.OpModeSelect6, PF: true})),
		illegal("mode select save", none(scsi.CDB{Opcode: scsi.OpModeSelect6, PF: true, SP: true}), invalidField),
	}
}

func blockCases() []cmdCase {
	const maxXfer = (1 << 20) / testBS
	ws := func(op scsi.Opcode, n uint32, anchor bool) scsi.CDB {
		return scsi.CDB{Opcode: op, TransferLength: n, Anchor: anchor, Unmap: anchor}
	}
	unmapPast := scsi.AppendUnmap(nil, []scsi.UnmapDescriptor{{LBA: testBlocks, Blocks: 1}})
	return []cmdCase{
		illegal("read past end", in(rd(scsi.OpRead16, testBlocks, 1), testBS), lbaRange),
		illegal("read lba near 2^64", in(rd(scsi.OpRead16, ^uint64(0), 1), testBS), lbaRange),
		good("read zero blocks at end", none(rd(scsi.OpRead16, testBlocks, 0))),
		illegal("read rdprotect", in(scsi.CDB{Opcode: scsi.OpRead10, Protect: 1, TransferLength: 1}, testBS),
			invalidField),
		illegal("read too long", none(rd(scsi.OpRead16, 0, maxXfer+1)), invalidField),
		good("read dpo fua", in(scsi.CDB{Opcode: scsi.OpRead10, DPO: true, FUA: true, TransferLength: 1}, testBS),
			wantProduced(testBS)),
		good("read6 256 blocks", in(rd(scsi.OpRead6, 0, 256), 256*testBS), wantProduced(256*testBS)),
		good("prefetch", none(rd(scsi.OpPreFetch10, testBlocks-1, 1))),
		illegal("prefetch past end", none(rd(scsi.OpPreFetch16, testBlocks, 1)), lbaRange),
		good("synchronize cache", none(scsi.CDB{Opcode: scsi.OpSynchronizeCache10})),
		illegal("synchronize cache past end", none(rd(scsi.OpSynchronizeCache16, testBlocks+1, 0)), lbaRange),
		good("verify bytchk 0", none(rd(scsi.OpVerify10, 0, 8))),
		illegal("verify past end", none(rd(scsi.OpVerify16, testBlocks-1, 2)), lbaRange),
		illegal("write same anchor", out(ws(scsi.OpWriteSame16, 1, true), blocks(1)), invalidField),
		good("write same to the end", out(ws(scsi.OpWriteSame16, 0, false), blocks(1))),
		illegal("write same short data", out(ws(scsi.OpWriteSame10, 1, false), blocks(1)[:testBS/2]), invalidIU),
		illegal("write same long data", req{cdb: cdb(ws(scsi.OpWriteSame10, 1, false)), out: blocks(1),
			edtl: 2 * testBS}, invalidIU),
		good("caw zero blocks", none(scsi.CDB{Opcode: scsi.OpCompareAndWrite})),
		illegal("caw zero blocks with data-out", out(rd(scsi.OpCompareAndWrite, 0, 0), blocks(2)),
			invalidField),
		illegal("caw dataout size", out(rd(scsi.OpCompareAndWrite, 0, 1), blocks(4)), invalidIU),
		good("orwrite zero blocks", none(rd(scsi.OpOrWrite16, testBlocks, 0))),
		illegal("orwrite past end", out(rd(scsi.OpOrWrite16, testBlocks, 1), blocks(1)), lbaRange),
		good("unmap empty", out(scsi.CDB{Opcode: scsi.OpUnmap, ParameterListLength: 8}, scsi.AppendUnmap(nil, nil))),
		illegal("unmap past end", out(scsi.CDB{Opcode: scsi.OpUnmap, ParameterListLength: 24}, unmapPast), lbaRange),
		illegal("unmap short list", out(scsi.CDB{Opcode: scsi.OpUnmap, ParameterListLength: 4}, make([]byte, 4)),
			scsi.ASCParameterListLengthError),
	}
}

func inquiryCDB(evpd bool, page uint8, alloc uint32) []byte {
	return cdb(scsi.CDB{Opcode: scsi.OpInquiry, EVPD: evpd, PageCode: page, AllocationLength: alloc})
}

func rsocCDB(opts uint8, op scsi.Opcode, sa uint16) []byte {
	return cdb(scsi.CDB{Opcode: scsi.OpMaintenanceIn, ServiceAction: scsi.SAReportSupportedOpcodes,
		ReportingOptions: opts, RequestedOpcode: op, RequestedServiceAction: sa, AllocationLength: 4096})
}

func wantProduced(n uint64) checkFn {
	return func(t *testing.T, h *harness, tk *Task) {
		t.Helper()
		if tk.Produced != n {
			t.Fatalf("produced %d bytes, want %d", tk.Produced, n)
		}
	}
}

func wantData(want ...byte) checkFn {
	return func(t *testing.T, h *harness, tk *Task) {
		t.Helper()
		if !bytes.Equal(tk.Data[:tk.Produced], want) {
			t.Fatalf("data %x, want %x", tk.Data[:tk.Produced], want)
		}
	}
}

// checkStandardInquiry: libiscsi Inquiry.Standard: a connected disk, SPC-4, HISUP,
// CMDQUE, the vendor padded, version descriptors.
func checkStandardInquiry(t *testing.T, h *harness, tk *Task) {
	d := tk.Data[:tk.Produced]
	if tk.Produced != scsi.StandardInquiryLen || d[0] != 0 || d[2] != scsi.VersionSPC4 ||
		d[3]&0x10 == 0 || d[4] != 91 || d[7]&0x02 == 0 || string(d[8:16]) != "SLUICE  " ||
		be.Uint16(d[58:]) != scsi.VersionDescriptorSAM5 {
		t.Fatalf("standard inquiry %x", d)
	}
}

// checkDeviceID parses VPD 83h: an NAA 6h designator built from NAAOUI and the NGUID,
// the EUI-64, the T10 vendor designator, the relative target port and the port's and
// target's SCSI names.
func checkDeviceID(t *testing.T, h *harness, tk *Task) {
	d := tk.Data[:tk.Produced]
	if int(be.Uint16(d[2:]))+4 != len(d) {
		t.Fatalf("page length %d of %d", be.Uint16(d[2:]), len(d))
	}
	seen := map[byte][]byte{}
	for off := 4; off < len(d); {
		n := int(d[off+3])
		seen[d[off+1]&0x3F] = d[off+4 : off+4+n]
		off += 4 + n
	}
	naa := seen[0x03] // association LU, type NAA
	nguid := h.lu.bdev.NGUID()
	oui := uint32(naa[0]&0x0F)<<20 | uint32(naa[1])<<12 | uint32(naa[2])<<4 | uint32(naa[3]>>4)
	if len(naa) != 16 || naa[0]>>4 != 6 || !bytes.Equal(naa[4:], nguid[4:]) || oui != NAAOUI ||
		naa[3]&0x0F != nguid[3]&0x0F {
		t.Fatalf("naa %x", naa)
	}
	eui := h.lu.bdev.EUI64()
	if !bytes.Equal(seen[0x02], eui[:]) {
		t.Fatalf("eui-64 %x", seen[0x02])
	}
	if port := seen[0x14]; len(port) != 4 || be.Uint16(port[2:]) != 1 {
		t.Fatalf("relative target port %x", port)
	}
	if name := seen[0x18]; !bytes.HasPrefix(name, []byte("iqn.2026-01.dev.sluice:target,t,0x0001\x00")) {
		t.Fatalf("target port name %q", name)
	}
	if name := seen[0x28]; !bytes.HasPrefix(name, []byte("iqn.2026-01.dev.sluice:target\x00")) {
		t.Fatalf("target name %q", name)
	}
	if v := seen[0x01]; !bytes.HasPrefix(v, []byte("SLUICE  ")) {
		t.Fatalf("t10 vendor %q", v)
	}
}

// TestPrepare: what the transport learns before data-out arrives.
func TestPrepare(t *testing.T) {
	for _, c := range []struct {
		cdb []byte
		dir scsi.Direction
		n   uint64
	}{
		{read16(0, 8), scsi.DirIn, 8 * testBS},
		{write16(0, 8), scsi.DirOut, 8 * testBS},
		{cawCDB(0, 1), scsi.DirOut, 2 * testBS},
		{cdb(scsi.CDB{Opcode: scsi.OpWriteSame16, TransferLength: 100}), scsi.DirOut, testBS},
		{cdb(scsi.CDB{Opcode: scsi.OpWriteSame16, NDOB: true, TransferLength: 100}), scsi.DirNone, 0},
		{inquiryCDB(false, 0, 96), scsi.DirIn, 96},
		{cdb(scsi.CDB{Opcode: scsi.OpTestUnitReady}), scsi.DirNone, 0},
		{cdb(scsi.CDB{Opcode: scsi.OpWriteAtomic16, TransferLength: 4}), scsi.DirOut, 4 * testBS},
		{cdb(scsi.CDB{Opcode: scsi.OpSanitize, ServiceAction: scsi.SASanitizeOverwrite,
			ParameterListLength: testBS + 4}), scsi.DirOut, testBS + 4},
		{cdb(scsi.CDB{Opcode: scsi.OpSanitize, ServiceAction: scsi.SASanitizeBlockErase}), scsi.DirNone, 0},
		{[]byte{0xFF, 0, 0, 0, 0, 0}, scsi.DirNone, 0},
	} {
		if dir, n := Prepare(c.cdb, testBS); dir != c.dir || n != c.n {
			t.Errorf("%x: %v %d, want %v %d", c.cdb, dir, n, c.dir, c.n)
		}
	}
}
