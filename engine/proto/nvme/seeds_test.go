package nvme

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestGenSeeds rewrites the hand-made seed corpus under testdata/fuzz (realistic PDUs,
// commands and pages as Linux, SPDK and nvmet send them). Crashers that `go test -fuzz`
// saves there are kept beside these files. Run: SLUICE_GEN_SEEDS=1 go test -run GenSeeds
func TestGenSeeds(t *testing.T) {
	if os.Getenv("SLUICE_GEN_SEEDS") == "" {
		t.Skip("set SLUICE_GEN_SEEDS=1 to regenerate the seed corpus")
	}
	genHeaderSeeds(t)
	genPSHSeeds(t)
	genSQESeeds(t)
	genConnectSeeds(t)
	genIdentifySeeds(t)
	genLogSeeds(t)
}

// seedFile writes one corpus file in the "go test fuzz v1" format.
func seedFile(t *testing.T, target, name string, args ...any) {
	var buf bytes.Buffer
	buf.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			buf.WriteString("[]byte(" + strconv.Quote(string(v)) + ")\n")
		case string:
			buf.WriteString("string(" + strconv.Quote(v) + ")\n")
		case uint8:
			fmt.Fprintf(&buf, "byte('\\x%02x')\n", v)
		case uint64:
			fmt.Fprintf(&buf, "uint64(%d)\n", v)
		default:
			t.Fatalf("type %T", a)
		}
	}
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// trimZeros drops trailing zero bytes; fixed-size targets zero-fill short inputs.
func trimZeros(b []byte) []byte { return bytes.TrimRight(b, "\x00") }

// pdu frames a header: CH, then the PSH written by psh.
func pdu(ch CommonHeader, psh func([]byte)) []byte {
	b := make([]byte, max(int(ch.HLen), CHLen))
	ch.Put(b)
	if psh != nil {
		psh(b)
	}
	return b
}

// genHeaderSeeds: FuzzCommonHeader takes the CH and a params byte: bit0 receiver is the
// host, bit1 HDGST, bit2 DDGST, bits 7:3 PDA.
func genHeaderSeeds(t *testing.T) {
	none, hd := LayoutParams{}, LayoutParams{HDGST: true}
	both := LayoutParams{HDGST: true, DDGST: true}
	ch := frameHeaderBytes
	seedFile(t, "FuzzCommonHeader", "linux-icreq", ch(PDUTypeICReq, 0, 0, none), uint8(0))
	seedFile(t, "FuzzCommonHeader", "capsule-icd-digests",
		ch(PDUTypeCapsuleCmd, 0, 4096, both), uint8(6))
	seedFile(t, "FuzzCommonHeader", "capsule-no-data-hdgst",
		ch(PDUTypeCapsuleCmd, 0, 0, hd), uint8(2))
	seedFile(t, "FuzzCommonHeader", "h2cdata-last", ch(PDUTypeH2CData, CHFlagLastPDU,
		131072, both), uint8(6))
	seedFile(t, "FuzzCommonHeader", "c2hdata-success", ch(PDUTypeC2HData,
		CHFlagLastPDU|CHFlagSuccess, 4096, none), uint8(1))
	seedFile(t, "FuzzCommonHeader", "c2hdata-padded", ch(PDUTypeC2HData, CHFlagLastPDU, 512,
		LayoutParams{HDGST: true, PDA: 31}), uint8(1|2|31<<3))
	seedFile(t, "FuzzCommonHeader", "r2t-hdgst", ch(PDUTypeR2T, 0, 0, hd), uint8(3))
	seedFile(t, "FuzzCommonHeader", "capsuleresp", ch(PDUTypeCapsuleResp, 0, 0, none), uint8(1))
	seedFile(t, "FuzzCommonHeader", "c2htermreq", ch(PDUTypeC2HTermReq, 0, 72, none), uint8(1))
	seedFile(t, "FuzzCommonHeader", "bad-hlen", []byte{4, 0, 71, 0, 71, 0, 0, 0}, uint8(0))
	seedFile(t, "FuzzCommonHeader", "bad-pdo-align",
		[]byte{4, 0, 72, 72, 0x48, 0x10, 0, 0}, uint8(3<<3))
}

func genPSHSeeds(t *testing.T) {
	none, hd := LayoutParams{}, LayoutParams{HDGST: true}
	both := LayoutParams{HDGST: true, DDGST: true}
	icreq := func(r ICReq) []byte { return pdu(FrameHeader(PDUTypeICReq, 0, 0, none), r.Put) }
	seedFile(t, "FuzzICReq", "linux-no-digest", icreq(ICReq{}))
	seedFile(t, "FuzzICReq", "linux-hdgst", icreq(ICReq{DGST: DigestHeader}))
	seedFile(t, "FuzzICReq", "linux-both", icreq(ICReq{DGST: DigestHeader | DigestData}))
	seedFile(t, "FuzzICReq", "bad-pfv-hpda", icreq(ICReq{PFV: 1, HPDA: 40, MAXR2T: 15}))
	icresp := func(r ICResp) []byte { return pdu(FrameHeader(PDUTypeICResp, 0, 0, none), r.Put) }
	seedFile(t, "FuzzICResp", "nvmet", icresp(ICResp{MAXH2CDATA: 0x400000}))
	seedFile(t, "FuzzICResp", "spdk-digests", icresp(ICResp{DGST: DigestHeader | DigestData,
		MAXH2CDATA: 131072}))
	seedFile(t, "FuzzICResp", "bad-maxh2cdata", icresp(ICResp{CPDA: 1, MAXH2CDATA: 100}))

	seedFile(t, "FuzzH2CData", "after-r2t", pdu(FrameHeader(PDUTypeH2CData, CHFlagLastPDU,
		8192, hd), (&H2CData{CCCID: 0x21, TTAG: 3, DATAO: 0, DATAL: 8192}).Put))
	seedFile(t, "FuzzH2CData", "second-piece", pdu(FrameHeader(PDUTypeH2CData, 0, 4096,
		none), (&H2CData{CCCID: 0x21, TTAG: 3, DATAO: 4096, DATAL: 4096}).Put))
	seedFile(t, "FuzzC2HData", "read-4k", pdu(FrameHeader(PDUTypeC2HData,
		CHFlagLastPDU|CHFlagSuccess, 4096, none), (&C2HData{CCCID: 7, DATAL: 4096}).Put))
	seedFile(t, "FuzzC2HData", "read-part", pdu(FrameHeader(PDUTypeC2HData, 0, 65536, both),
		(&C2HData{CCCID: 8, DATAO: 65536, DATAL: 65536}).Put))
	seedFile(t, "FuzzR2T", "whole-write", pdu(FrameHeader(PDUTypeR2T, 0, 0, none),
		(&R2T{CCCID: 0x21, TTAG: 3, R2TL: 131072}).Put))
	seedFile(t, "FuzzR2T", "window", pdu(FrameHeader(PDUTypeR2T, 0, 0, hd),
		(&R2T{CCCID: 1, TTAG: 0xFFFF, R2TO: 131072, R2TL: 4096}).Put))

	capsule := make([]byte, CapsuleCmdHLen)
	FrameHeader(PDUTypeCapsuleCmd, 0, 0, none).Put(capsule)
	capsule[2] = 71
	out := make([]byte, MaxTermReqPLen)
	tr := NewTermReq(PDUTypeC2HTermReq, FESInvalidHeaderField, 2, capsule)
	seedFile(t, "FuzzTermReq", "c2h-bad-hlen", out[:tr.Put(out)])
	tr = NewTermReq(PDUTypeH2CTermReq, FESHeaderDigestError, 0, nil)
	seedFile(t, "FuzzTermReq", "h2c-hdgst", out[:tr.Put(out)])
	tr = NewTermReq(PDUTypeC2HTermReq, FESDataLimitExceeded, 0, make([]byte, 128))
	seedFile(t, "FuzzTermReq", "c2h-max", out[:tr.Put(out)])
}

func genSQESeeds(t *testing.T) {
	var s SQE
	s.SetOpcode(OpcodeFabrics)
	s.SetPSDT(PSDTSGLMPTR)
	s.SetFCTYPE(FCTConnect)
	s.SetSGL1(SGLDescriptor{Length: ConnectDataLen, ID: SGLIDInCapsule})
	s.SetSQSIZE(31)
	s.SetKATO(5000)
	seedFile(t, "FuzzSQE", "linux-connect-admin", s[:])
	s.SetQID(1)
	s.SetSQSIZE(127)
	s.SetCATTR(CATTRDisableSQFlowCtrl)
	s.SetKATO(0)
	seedFile(t, "FuzzSQE", "linux-connect-io", s[:])
	s.Reset()
	s.SetOpcode(uint8(NVMRead))
	s.SetPSDT(PSDTSGLMPTR)
	s.SetCID(0x4021)
	s.SetNSID(1)
	s.SetSGL1(SGLDescriptor{Length: 131072, ID: SGLIDTransport})
	s.SetSLBA(2048)
	s.SetNLB(255)
	seedFile(t, "FuzzSQE", "read-128k", s[:])
	s.SetOpcode(uint8(NVMWrite))
	s.SetSGL1(SGLDescriptor{Length: 4096, ID: SGLIDInCapsule})
	s.SetNLB(7)
	s.SetFUA(true)
	seedFile(t, "FuzzSQE", "write-icd-fua", s[:])
	s.Reset()
	s.SetOpcode(OpcodeFabrics)
	s.SetFCTYPE(FCTPropertyGet)
	s.SetPropAttrib(PropSize8)
	s.SetPropOffset(PropCAP)
	seedFile(t, "FuzzSQE", "property-get-cap", s[:])
	s.Reset()
	s.SetOpcode(uint8(AdminIdentify))
	s.SetSGL1(SGLDescriptor{Length: 4096, ID: SGLIDTransport})
	s.SetIdentify(CNSController, 0, 0)
	seedFile(t, "FuzzSQE", "identify-ctrl", s[:])
	s.SetSGL1(SGLDescriptor{Address: 0x1000, Length: 4096, Key: 0x1234,
		ID: SGLTypeKeyedDataBlock<<4 | 0xF})
	seedFile(t, "FuzzSQE", "keyed-sgl", s[:])

	var g SQE
	g.SetOpcode(uint8(AdminGetLogPage))
	GetLogPage{LID: LogDiscovery, NUMD: NUMDFor(3072)}.Put(&g)
	seedFile(t, "FuzzGetLogPage", "discovery-3k", g[:])
	GetLogPage{LID: LogDiscovery, NUMD: NUMDFor(1024), LPO: 1024}.Put(&g)
	seedFile(t, "FuzzGetLogPage", "discovery-entry-1", g[:])
	GetLogPage{LID: LogChangedNSList, NUMD: NUMDFor(4096)}.Put(&g)
	seedFile(t, "FuzzGetLogPage", "changed-ns", g[:])
	GetLogPage{LID: LogError, LSP: 0x7F, NUMD: 0xFFFFFFFF, LSI: 1, LPO: ^uint64(0),
		UUID: 1, OT: true, CSI: CSIZNS}.Put(&g)
	seedFile(t, "FuzzGetLogPage", "all-fields", g[:])

	var r [DSMRangeLen]byte
	DSMRange{NLB: 2048, SLBA: 1 << 30}.Put(r[:])
	seedFile(t, "FuzzDSMRange", "deallocate-1m", r[:])
}

func genConnectSeeds(t *testing.T) {
	d := linuxConnectData()
	var cd [ConnectDataLen]byte
	_ = d.MarshalTo(&cd)
	seedFile(t, "FuzzConnectData", "linux-admin", cd[:])
	d.CNTLID = 1
	d.SubNQN = DiscoveryNQN
	_ = d.MarshalTo(&cd)
	seedFile(t, "FuzzConnectData", "discovery", cd[:])
	cd[300] = 'x'
	seedFile(t, "FuzzConnectData", "bad-subnqn-tail-ok", cd[:])
	cd[256] = 'N'
	seedFile(t, "FuzzConnectData", "bad-subnqn", cd[:])
	for name, s := range map[string]string{
		"discovery": DiscoveryNQN,
		"uuid":      "nqn.2014-08.org.nvmexpress:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
		"spdk":      "nqn.2016-06.io.spdk:cnode1",
		"bad-label": "nqn.2016-06.io.-spdk:x",
	} {
		seedFile(t, "FuzzValidateNQN", name, s)
	}
	seedFile(t, "FuzzProperties", "spdk-cap", CAP{MQES: 127, CQR: true, TO: 60,
		CSS: CSSNVM}.Value())
	seedFile(t, "FuzzProperties", "linux-cc", uint64(0x00460001))
	seedFile(t, "FuzzProperties", "aen-ns-changed", uint64(AENNSAttributeChanged.DW0()))
}

func genIdentifySeeds(t *testing.T) {
	var id [IdentifyLen]byte
	c := sluiceController()
	c.MarshalTo(&id)
	seedFile(t, "FuzzIdentifyController", "sluice-io", trimZeros(id[:]))
	c.CNTRLTYPE, c.KAS, c.NN, c.ONCS = CntrlTypeDiscovery, 10, 0, 0
	PutNQN(c.SUBNQN[:], DiscoveryNQN)
	c.MarshalTo(&id)
	seedFile(t, "FuzzIdentifyController", "sluice-discovery", trimZeros(id[:]))
	n := IdentifyNamespace{NSZE: 1 << 21, NCAP: 1 << 21, NUSE: 1 << 21, NMIC: NMICShared,
		RESCAP: 0xFF, ANAGRPID: 1, NSFEAT: NSFEATOptPerf, NPWG: 7, NOWS: 31}
	n.LBAF[0].LBADS = 12
	n.NGUID[0] = 0x5A
	n.MarshalTo(&id)
	seedFile(t, "FuzzIdentifyNamespace", "4k-shared", trimZeros(id[:]))
	var l NSList
	ActiveNSList(&l, []uint32{1, 2, 3}, 0)
	l.MarshalTo(&id)
	seedFile(t, "FuzzNSList", "three", trimZeros(id[:]))
	seedFile(t, "FuzzNSList", "overflow", []byte{0xFF, 0xFF, 0xFF, 0xFF})
	_ = MarshalNSIDDescriptors(&id, []NSIDDescriptor{{NIDT: NIDTNGUID, NID: n.NGUID},
		{NIDT: NIDTUUID, NID: [16]byte{1, 15: 2}}, {NIDT: NIDTCSI}})
	seedFile(t, "FuzzNSIDDescriptors", "linux-view", id[:48])
	seedFile(t, "FuzzNSIDDescriptors", "unknown-type", []byte{9, 2, 0, 0, 1, 2, 1, 8, 0, 0,
		1, 2, 3, 4, 5, 6, 7, 8})
}

func genLogSeeds(t *testing.T) {
	es := []DiscoveryLogEntry{
		discoveryEntry(DiscoveryNQN, "127.0.0.1", SubTypeCurrentDiscovery),
		discoveryEntry("nqn.2024-01.dev.sluice:vol0", "127.0.0.1", SubTypeNVMe),
	}
	dl := make([]byte, DiscoveryLogLen(2))
	_ = MarshalDiscoveryLog(dl, 3, es)
	seedFile(t, "FuzzDiscoveryLog", "two-entries", dl)
	seedFile(t, "FuzzDiscoveryLog", "header-only", dl[:1024])

	var eb [ErrorLogEntryLen]byte
	(&ErrorLogEntry{ErrorCount: 1, SQID: 1, CID: 5, Status: StatusInvalidField.WithDNR(),
		PEL: PEL(40, 0), TRTYPE: TRTypeTCP}).MarshalTo(&eb)
	seedFile(t, "FuzzErrorLogEntry", "invalid-field", trimZeros(eb[:]))
	var sb [SMARTLogLen]byte
	(&SMARTLog{CompositeTemperature: 300, AvailableSpare: 100, DataUnitsRead: DataUnits(1 << 30),
		PowerOnHours: Uint128{Lo: 10}}).MarshalTo(&sb)
	seedFile(t, "FuzzSMARTLog", "healthy", trimZeros(sb[:]))
	var ceb [CommandEffectsLogLen]byte
	var ce CommandEffectsLog
	ce.ACS[AdminIdentify] = EffectCSUPP
	ce.IOCS[NVMWrite] = EffectCSUPP | EffectLBCC
	ce.MarshalTo(&ceb)
	seedFile(t, "FuzzCommandEffectsLog", "read-write", trimZeros(ceb[:]))
}
