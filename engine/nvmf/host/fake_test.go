package host

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"sluice/engine/proto/nvme"
)

// fakeTarget is a scripted NVMe/TCP controller on a loopback listener: just enough of
// a target (ICResp, Connect, properties, Identify, features, logs, a RAM namespace) to
// drive the host through every path, with hooks to break it on purpose. It checks the
// framing of everything the host sends with the codec's strict controller-side layout,
// so the host's own PDUs are tested too.
type fakeTarget struct {
	t   testing.TB
	ln  net.Listener
	cfg fakeCfg

	mu     sync.Mutex
	cc     nvme.CC
	conns  []*fakeConn
	events []string // what the host did, for assertions
	h2c    []nvme.H2CData
	store  []byte
	wg     sync.WaitGroup
}

type fakeCfg struct {
	subnqn   string
	disc     bool
	icresp   func(req nvme.ICReq) nvme.ICResp
	maxH2C   uint32
	ioccsz   uint32
	mqes     uint16
	identify func(id *nvme.IdentifyController)
	// c2hChunk splits read data into C2HData PDUs of this size (0: one PDU).
	c2hChunk int
	// r2tChunk splits a write into R2Ts of this size (0: one R2T).
	r2tChunk int
	// success completes reads with C2HData SUCCESS when the host disabled SQ flow
	// control.
	success bool
	// hook sees every command first; it returns true if it answered it.
	hook func(fc *fakeConn, sqe *nvme.SQE, data []byte) bool
	// discLog is served for LID 70h.
	discLog []byte
	// blocks of 512 bytes in namespace 1.
	blocks int
	// tolerant records malformed host PDUs as an event instead of failing the test.
	tolerant bool
	// benchIO switches I/O connections to the allocation-free responder after Connect.
	benchIO bool
}

const fakeBlock = 512

func newFakeTarget(t testing.TB, cfg fakeCfg) *fakeTarget {
	t.Helper()
	if cfg.subnqn == "" {
		cfg.subnqn = "nqn.2024-01.io.sluice:test"
	}
	if cfg.maxH2C == 0 {
		cfg.maxH2C = 8192
	}
	if cfg.ioccsz == 0 {
		cfg.ioccsz = (64 + 4096) / 16
	}
	if cfg.mqes == 0 {
		cfg.mqes = 127
	}
	if cfg.blocks == 0 {
		cfg.blocks = 256
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeTarget{t: t, ln: ln, cfg: cfg, store: make([]byte, cfg.blocks*fakeBlock)}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.close)
	return f
}

func (f *fakeTarget) addr() string { return f.ln.Addr().String() }

func (f *fakeTarget) close() {
	f.ln.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		c.nc.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *fakeTarget) accept() {
	defer f.wg.Done()
	for {
		nc, err := f.ln.Accept()
		if err != nil {
			return
		}
		fc := &fakeConn{f: f, nc: nc, br: bufio.NewReader(nc)}
		f.mu.Lock()
		f.conns = append(f.conns, fc)
		f.mu.Unlock()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer nc.Close()
			fc.serve()
		}()
	}
}

func (f *fakeTarget) event(s string) {
	f.mu.Lock()
	f.events = append(f.events, s)
	f.mu.Unlock()
}

func (f *fakeTarget) sawEvent(s string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.events {
		if e == s {
			return true
		}
	}
	return false
}

// fakeConn is one connection of the fake target.
type fakeConn struct {
	f         *fakeTarget
	nc        net.Conn
	br        *bufio.Reader
	hd, dd    bool
	qid       uint16
	sqsize    int
	sqhd      int
	sqflowOff bool
	wmu       sync.Mutex
	aers      []uint16
	ttag      uint16
}

func (c *fakeConn) recvParams() nvme.LayoutParams {
	return nvme.LayoutParams{Receiver: nvme.RoleController, HDGST: c.hd, DDGST: c.dd}
}

func (c *fakeConn) sendParams() nvme.LayoutParams {
	return nvme.LayoutParams{Receiver: nvme.RoleHost, HDGST: c.hd, DDGST: c.dd}
}

func (c *fakeConn) serve() {
	var b [nvme.ICReqLen]byte
	if _, err := io.ReadFull(c.br, b[:]); err != nil {
		return
	}
	req, _ := nvme.DecodeICReq(b[:])
	if b[0] != byte(nvme.PDUTypeICReq) || req.Validate() != nil || req.HPDA != 0 || req.MAXR2T != 0 {
		c.f.t.Errorf("fake: bad ICReq % x", b[:16])
		return
	}
	resp := nvme.ICResp{DGST: req.DGST, MAXH2CDATA: c.f.cfg.maxH2C}
	if c.f.cfg.icresp != nil {
		resp = c.f.cfg.icresp(req)
	}
	c.hd, c.dd = resp.DGST.HDGST(), resp.DGST.DDGST()
	nvme.FrameHeader(nvme.PDUTypeICResp, 0, 0, nvme.LayoutParams{}).Put(b[:])
	resp.Put(b[:])
	if _, err := c.nc.Write(b[:]); err != nil {
		return
	}
	for {
		l, hdr, data, err := c.readPDU()
		if err != nil {
			return
		}
		switch l.Type {
		case nvme.PDUTypeCapsuleCmd:
			sqe := *nvme.CapsuleSQE(hdr)
			if !c.command(&sqe, data) {
				return
			}
			if c.f.cfg.benchIO && c.qid != 0 {
				c.benchLoop()
				return
			}
		case nvme.PDUTypeH2CTermReq:
			tr, _ := nvme.DecodeTermReq(append(hdr, data...))
			c.f.event("termreq:" + tr.FES.String())
			return
		default:
			c.f.t.Errorf("fake: unexpected %v from host", l.Type)
			return
		}
	}
}

// readPDU reads one host PDU and checks its framing and digests.
func (c *fakeConn) readPDU() (nvme.Layout, []byte, []byte, error) {
	var ch8 [nvme.CHLen]byte
	if _, err := io.ReadFull(c.br, ch8[:]); err != nil {
		return nvme.Layout{}, nil, nil, err
	}
	ch, _ := nvme.DecodeCommonHeader(ch8[:])
	l, err := ch.Layout(c.recvParams())
	if err != nil {
		if c.f.cfg.tolerant {
			c.f.event("malformed")
		} else {
			c.f.t.Errorf("fake: host sent a malformed PDU %+v: %v", ch, err)
		}
		return l, nil, nil, err
	}
	b := make([]byte, ch.PLen)
	copy(b, ch8[:])
	if _, err := io.ReadFull(c.br, b[nvme.CHLen:]); err != nil {
		return l, nil, nil, err
	}
	if l.HDGST {
		if err := nvme.CheckHeaderDigest(b, int(l.HLen)); err != nil {
			c.f.t.Errorf("fake: host header digest: %v", err)
			return l, nil, nil, err
		}
	}
	if l.Type == nvme.PDUTypeH2CTermReq {
		return l, b[:l.HLen], b[l.HLen:], nil
	}
	if l.Pad != 0 {
		c.f.t.Errorf("fake: host padded a PDU although CPDA is 0")
	}
	data := b[l.DataOffset : l.DataOffset+l.DataLen]
	if l.DDGST && l.DataLen > 0 && nvme.CRC32C(data) != nvme.Digest(b[l.DataOffset+l.DataLen:]) {
		c.f.t.Errorf("fake: host data digest mismatch")
		return l, nil, nil, errors.New("ddgst")
	}
	return l, b[:l.HLen], data, nil
}

func (c *fakeConn) write(b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.Write(b)
}

// pdu frames a PDU to the host with the negotiated digests.
func (c *fakeConn) pdu(t nvme.PDUType, flags uint8, psh func([]byte), data []byte) []byte {
	ch := nvme.FrameHeader(t, flags, uint32(len(data)), c.sendParams())
	b := make([]byte, ch.PLen)
	ch.Put(b)
	psh(b)
	if ch.Flags&nvme.CHFlagHDGSTF != 0 {
		nvme.SetHeaderDigest(b, int(ch.HLen))
	}
	if len(data) > 0 {
		copy(b[ch.PDO:], data)
		if ch.Flags&nvme.CHFlagDDGSTF != 0 {
			nvme.PutDigest(b[int(ch.PDO)+len(data):], nvme.CRC32C(data))
		}
	}
	return b
}

func (c *fakeConn) respPDU(cid uint16, st nvme.Status, dw0, dw1 uint32) []byte {
	return c.pdu(nvme.PDUTypeCapsuleResp, 0, func(b []byte) {
		nvme.CapsuleCQE(b).Fill(cid, c.qid, uint16(c.sqhd), dw0, dw1, st)
	}, nil)
}

func (c *fakeConn) resp(cid uint16, st nvme.Status, dw0, dw1 uint32) {
	c.write(c.respPDU(cid, st, dw0, dw1))
}

func (c *fakeConn) c2hPDU(cid uint16, off uint32, data []byte, flags uint8) []byte {
	return c.pdu(nvme.PDUTypeC2HData, flags, func(b []byte) {
		d := nvme.C2HData{CCCID: cid, DATAO: off, DATAL: uint32(len(data))}
		d.Put(b)
	}, data)
}

func (c *fakeConn) r2tPDU(cid, ttag uint16, off, n uint32) []byte {
	return c.pdu(nvme.PDUTypeR2T, 0, func(b []byte) {
		r := nvme.R2T{CCCID: cid, TTAG: ttag, R2TO: off, R2TL: n}
		r.Put(b)
	}, nil)
}

// sendData sends read data in C2HData PDUs, then a CapsuleResp unless SUCCESS applies.
func (c *fakeConn) sendData(cid uint16, data []byte) {
	chunk := c.f.cfg.c2hChunk
	if chunk == 0 {
		chunk = len(data)
	}
	success := c.sqflowOff && c.f.cfg.success
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		var flags uint8
		if end == len(data) {
			flags = nvme.CHFlagLastPDU
			if success {
				flags |= nvme.CHFlagSuccess
			}
		}
		c.write(c.c2hPDU(cid, uint32(off), data[off:end], flags))
	}
	if !success {
		c.resp(cid, nvme.StatusSuccess, 0, 0)
	}
}

// fetch solicits a command's data with R2Ts (of cfg.r2tChunk bytes) and collects the
// H2CData PDUs, checking them.
func (c *fakeConn) fetch(sqe *nvme.SQE, n uint32) ([]byte, bool) {
	buf := make([]byte, n)
	chunk := uint32(c.f.cfg.r2tChunk)
	if chunk == 0 {
		chunk = n
	}
	for off := uint32(0); off < n; off += chunk {
		rl := min(chunk, n-off)
		c.ttag++
		ttag := c.ttag
		c.write(c.r2tPDU(sqe.CID(), ttag, off, rl))
		got := uint32(0)
		for got < rl {
			l, hdr, data, err := c.readPDU()
			if err != nil {
				return nil, false
			}
			if l.Type != nvme.PDUTypeH2CData {
				c.f.t.Errorf("fake: %v while waiting for H2CData", l.Type)
				return nil, false
			}
			h, _ := nvme.DecodeH2CData(hdr)
			c.f.mu.Lock()
			c.f.h2c = append(c.f.h2c, h)
			c.f.mu.Unlock()
			last := hdr[1]&nvme.CHFlagLastPDU != 0
			switch {
			case h.CCCID != sqe.CID() || h.TTAG != ttag:
				c.f.t.Errorf("fake: H2CData cccid %d ttag %d, want %d %d", h.CCCID, h.TTAG, sqe.CID(), ttag)
			case h.DATAO != off+got || h.DATAL == 0 || h.DATAO+h.DATAL > off+rl:
				c.f.t.Errorf("fake: H2CData %+v outside R2T window %d+%d (got %d)", h, off, rl, got)
			case h.DATAL > c.f.cfg.maxH2C:
				c.f.t.Errorf("fake: H2CData DATAL %d above MAXH2CDATA %d", h.DATAL, c.f.cfg.maxH2C)
			case last != (h.DATAO+h.DATAL == off+rl):
				c.f.t.Errorf("fake: H2CData LAST_PDU %v at %d+%d of window %d+%d", last, h.DATAO, h.DATAL, off, rl)
			case l.CheckDATAL(h.DATAL) != nil:
				c.f.t.Errorf("fake: H2CData DATAL %d, plen says %d", h.DATAL, l.DataLen)
			}
			copy(buf[h.DATAO:], data)
			got += h.DATAL
		}
	}
	return buf, true
}

// command answers one capsule; false ends the connection.
func (c *fakeConn) command(sqe *nvme.SQE, icd []byte) bool {
	f := c.f
	if c.sqsize > 0 {
		c.sqhd = (c.sqhd + 1) % c.sqsize
	}
	sgl := sqe.SGL1()
	if sqe.PSDT() != nvme.PSDTSGLMPTR {
		f.t.Errorf("fake: PSDT %d", sqe.PSDT())
	}
	data := icd
	dir := nvme.DataDirection(sqe.Opcode())
	if sqe.Opcode() == nvme.OpcodeFabrics {
		dir = nvme.DataDirection(uint8(sqe.FCTYPE()))
	}
	switch {
	case sgl.ID == nvme.SGLIDInCapsule:
		if sgl.Address != 0 || int(sgl.Length) != len(icd) || dir != nvme.DirHostToCtrl {
			f.t.Errorf("fake: in-capsule SGL %+v with %d bytes", sgl, len(icd))
		}
	case sgl.ID == nvme.SGLIDTransport && len(icd) == 0:
		if dir == nvme.DirHostToCtrl && sgl.Length > 0 {
			if f.cfg.hook == nil || !f.cfg.hook(c, sqe, nil) {
				var ok bool
				if data, ok = c.fetch(sqe, sgl.Length); !ok {
					return false
				}
			} else {
				return true
			}
		}
	default:
		f.t.Errorf("fake: SGL %+v with %d bytes of ICD", sgl, len(icd))
	}
	if f.cfg.hook != nil && f.cfg.hook(c, sqe, data) {
		return true
	}
	if sqe.Opcode() == nvme.OpcodeFabrics {
		return c.fabrics(sqe, data)
	}
	if c.qid == 0 {
		return c.admin(sqe, data)
	}
	return c.io(sqe, data)
}

func (c *fakeConn) fabrics(sqe *nvme.SQE, data []byte) bool {
	f := c.f
	cid := sqe.CID()
	switch sqe.FCTYPE() {
	case nvme.FCTConnect:
		cd, err := nvme.DecodeConnectData(data)
		if err != nil {
			f.t.Errorf("fake: connect data: %v", err)
			c.resp(cid, nvme.StatusConnectInvalidParameters, 0, 0)
			return true
		}
		if cd.SubNQN != f.cfg.subnqn {
			c.resp(cid, nvme.StatusConnectInvalidHost, 0, 0)
			return true
		}
		c.qid = sqe.QID()
		c.sqsize = int(sqe.SQSIZE()) + 1
		c.sqflowOff = sqe.CATTR()&nvme.CATTRDisableSQFlowCtrl != 0
		if c.qid == 0 && cd.CNTLID != nvme.CNTLIDDynamic || c.qid != 0 && cd.CNTLID != 1 {
			f.t.Errorf("fake: connect qid %d cntlid %#x", c.qid, cd.CNTLID)
		}
		f.event("connect:" + string(rune('0'+c.qid)))
		c.resp(cid, nvme.StatusSuccess, nvme.ConnectSuccessDW0(1, 0), 0)
	case nvme.FCTPropertyGet:
		var v uint64
		f.mu.Lock()
		switch sqe.PropOffset() {
		case nvme.PropCAP:
			v = nvme.CAP{MQES: f.cfg.mqes, CQR: true, TO: 1, CSS: nvme.CSSNVM}.Value()
		case nvme.PropVS:
			v = uint64(nvme.VS14)
		case nvme.PropCC:
			v = uint64(f.cc.Value())
		case nvme.PropCSTS:
			s := nvme.CSTS{RDY: f.cc.EN}
			if f.cc.SHN != 0 {
				s.SHST = nvme.SHSTComplete
			}
			v = uint64(s.Value())
		}
		f.mu.Unlock()
		c.resp(cid, nvme.StatusSuccess, uint32(v), uint32(v>>32))
	case nvme.FCTPropertySet:
		if sqe.PropOffset() == nvme.PropCC {
			f.mu.Lock()
			f.cc = nvme.DecodeCC(uint32(sqe.PropValue()))
			f.mu.Unlock()
			f.event("cc")
		}
		c.resp(cid, nvme.StatusSuccess, 0, 0)
	default:
		c.resp(cid, nvme.StatusInvalidOpcode, 0, 0)
	}
	return true
}

func (f *fakeTarget) identifyController() nvme.IdentifyController {
	id := nvme.IdentifyController{
		CNTLID: 1, VER: nvme.VS14, KAS: 10, SGLS: nvme.SGLSSupported | nvme.SGLSOffset,
		IOCCSZ: f.cfg.ioccsz, IORCSZ: 1, SQES: 0x66, CQES: 0x44, MAXCMD: 128, NN: 1,
		CNTRLTYPE: nvme.CntrlTypeIO, ELPE: 3, LPA: nvme.LPAExtendedData,
	}
	if f.cfg.disc {
		id.CNTRLTYPE = nvme.CntrlTypeDiscovery
		id.KAS = 0
		id.IOCCSZ, id.IORCSZ, id.SQES, id.CQES, id.NN = 0, 0, 0, 0, 0
	}
	nvme.PutNQN(id.SUBNQN[:], f.cfg.subnqn)
	if f.cfg.identify != nil {
		f.cfg.identify(&id)
	}
	return id
}

func (c *fakeConn) admin(sqe *nvme.SQE, data []byte) bool {
	f := c.f
	cid := sqe.CID()
	switch nvme.AdminOpcode(sqe.Opcode()) {
	case nvme.AdminIdentify:
		var b [nvme.IdentifyLen]byte
		switch sqe.IdentifyCNS() {
		case nvme.CNSController:
			id := f.identifyController()
			id.MarshalTo(&b)
		case nvme.CNSNamespace:
			ns := nvme.IdentifyNamespace{NSZE: uint64(f.cfg.blocks), NCAP: uint64(f.cfg.blocks),
				NUSE: uint64(f.cfg.blocks)}
			ns.LBAF[0].LBADS = 9
			ns.MarshalTo(&b)
		case nvme.CNSActiveNSList:
			l := nvme.NSList{}
			nvme.ActiveNSList(&l, []uint32{1, 7}, sqe.NSID())
			l.MarshalTo(&b)
		case nvme.CNSNSIDDescriptorList:
			nvme.MarshalNSIDDescriptors(&b, []nvme.NSIDDescriptor{{NIDT: nvme.NIDTNGUID, NID: [16]byte{1, 2, 3}}})
		default:
			c.resp(cid, nvme.StatusInvalidField, 0, 0)
			return true
		}
		c.sendData(cid, b[:min(len(b), int(sqe.SGL1().Length))])
	case nvme.AdminSetFeatures:
		var dw0 uint32
		if sqe.FeatureID() == nvme.FeatNumberOfQueues {
			dw0 = nvme.NumberOfQueues(3, 3)
		}
		f.event("setfeat:" + strconv.Itoa(int(sqe.FeatureID())))
		c.resp(cid, nvme.StatusSuccess, dw0, 0)
	case nvme.AdminGetFeatures:
		c.resp(cid, nvme.StatusSuccess, 0x1234, 0)
	case nvme.AdminKeepAlive:
		f.event("keepalive")
		c.resp(cid, nvme.StatusSuccess, 0, 0)
	case nvme.AdminAsyncEventRequest:
		c.wmu.Lock()
		c.aers = append(c.aers, cid)
		c.wmu.Unlock()
		f.event("aer")
	case nvme.AdminGetLogPage:
		g := nvme.DecodeGetLogPage(sqe)
		var page []byte
		switch g.LID {
		case nvme.LogDiscovery:
			page = f.cfg.discLog
		default:
			page = make([]byte, 4096)
			page[0] = byte(g.LID)
		}
		out := make([]byte, g.Len())
		if g.LPO < uint64(len(page)) {
			copy(out, page[g.LPO:])
		}
		c.sendData(cid, out)
	default:
		c.resp(cid, nvme.StatusInvalidOpcode, 0, 0)
	}
	return true
}

// aen completes an outstanding AER with event e.
func (c *fakeConn) aen(e nvme.AsyncEvent) bool {
	c.wmu.Lock()
	if len(c.aers) == 0 {
		c.wmu.Unlock()
		return false
	}
	cid := c.aers[0]
	c.aers = c.aers[1:]
	c.wmu.Unlock()
	c.resp(cid, nvme.StatusSuccess, e.DW0(), 0)
	return true
}

func (c *fakeConn) io(sqe *nvme.SQE, data []byte) bool {
	f := c.f
	cid := sqe.CID()
	switch nvme.NVMOpcode(sqe.Opcode()) {
	case nvme.NVMRead:
		off := int(sqe.SLBA()) * fakeBlock
		n := int(sqe.Blocks()) * fakeBlock
		if off+n > len(f.store) || int(sqe.SGL1().Length) != n {
			c.resp(cid, nvme.StatusLBAOutOfRange, 0, 0)
			return true
		}
		f.mu.Lock()
		out := append([]byte(nil), f.store[off:off+n]...)
		f.mu.Unlock()
		c.sendData(cid, out)
	case nvme.NVMWrite:
		off := int(sqe.SLBA()) * fakeBlock
		n := int(sqe.Blocks()) * fakeBlock
		if off+n > len(f.store) || len(data) != n {
			c.resp(cid, nvme.StatusLBAOutOfRange, 0, 0)
			return true
		}
		f.mu.Lock()
		copy(f.store[off:], data)
		f.mu.Unlock()
		c.resp(cid, nvme.StatusSuccess, 0, 0)
	case nvme.NVMFlush, nvme.NVMWriteZeroes:
		c.resp(cid, nvme.StatusSuccess, 0, 0)
	case nvme.NVMDatasetManagement:
		if len(data) != sqe.DSMRanges()*nvme.DSMRangeLen {
			f.t.Errorf("fake: DSM with %d bytes for %d ranges", len(data), sqe.DSMRanges())
		}
		c.resp(cid, nvme.StatusSuccess, 0, 0)
	default:
		c.resp(cid, nvme.StatusInvalidOpcode, 0, 0)
	}
	return true
}

// connect is a helper: a Controller on the fake with keep-alive off.
func connectFake(t testing.TB, f *fakeTarget, o Options) *Controller {
	t.Helper()
	if o.KATO == 0 {
		o.KATO = -1
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Connect(ctx, f.addr(), f.cfg.subnqn, o)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
