package nvmf

import (
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"sluice/engine/bdev"
	"sluice/engine/mem"
	"sluice/engine/proto/nvme"
	"sluice/engine/reactor"
	"sluice/engine/reservation/manager"
	"sluice/engine/reservation/manager/managertest"
	"sluice/engine/tcpconn"
)

// stepTarget is a target on one reactor that the test steps by hand (no goroutine),
// with connections over socketpairs: everything from the bytes a host writes to the
// bytes the target writes back runs on the test's goroutine, deterministically.
type stepTarget struct {
	t     testing.TB
	r     *reactor.Reactor
	tgt   *Target
	pg    *pollGroup
	bdevs *bdev.Manager
	dom   *mem.Domain

	fakeNs atomic.Int64

	decider *managertest.Decider
	resv    *manager.Manager
}

const testNQN = "nqn.2026-11.dev.sluice:test"

func newStepTarget(t testing.TB, bdevModule string) *stepTarget {
	return newStepTargetOpts(t, stepOpts{module: bdevModule})
}

// newStepTargetMem is newStepTarget with a buffer domain of memBytes.
func newStepTargetMem(t testing.TB, bdevModule string, memBytes int64) *stepTarget {
	return newStepTargetOpts(t, stepOpts{module: bdevModule, memBytes: memBytes})
}

// stepOpts vary the step target. module "delay" exports a delay bdev (completions held
// for delayPolls poller runs, due ones completed newest first) over a malloc bdev, so
// that writes stay in flight across a teardown; fakeClock gives the reactor a clock
// the test moves by hand (st.advance), for deterministic timers.
type stepOpts struct {
	module     string
	memBytes   int64
	delayPolls uint32
	fakeClock  bool
	limits     tcpconn.Limits
	// resv serves reservations, decided by an in-memory decider (st.decider).
	resv bool
}

func newStepTargetOpts(t testing.TB, o stepOpts) *stepTarget {
	t.Helper()
	if o.memBytes == 0 {
		o.memBytes = 32 << 20
	}
	st := &stepTarget{t: t, bdevs: bdev.NewManager()}
	rc := reactor.Config{Core: -1, Mode: reactor.ModeBusy}
	if o.fakeClock {
		st.fakeNs.Store(1)
		rc.Clock = st.fakeNs.Load
	}
	r, err := reactor.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	dom, err := mem.NewDomain(mem.DomainConfig{SizeBytes: o.memBytes, Hugepages: mem.HugepagesNever,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	core, err := dom.NewCore(0)
	if err != nil {
		t.Fatal(err)
	}
	opts, _ := TransportOpts{}.normalize()
	st.r, st.dom = r, dom
	st.tgt = &Target{opts: opts, bdevs: st.bdevs, log: testLogger(),
		firmware: "test", started: time.Now(), subsystems: map[string]*Subsystem{}, listeners: map[string]*listener{}}
	st.tgt.limits, _ = tcpconn.NewLimitSet(o.limits)
	if o.resv {
		st.decider = managertest.New()
		st.resv = manager.New(manager.Config{Decider: st.decider, Reactors: []*reactor.Reactor{r}})
		t.Cleanup(st.resv.Close)
		st.tgt.resv = st.resv
		st.resv.AddSink(st.tgt)
	}
	st.pg = newPollGroup(st.tgt, r, core)
	st.pg.start()
	st.tgt.pgs = []*pollGroup{st.pg}
	disc, _ := newSubsystem(SubsystemParams{NQN: DiscoveryNQN})
	st.tgt.subsystems[DiscoveryNQN] = disc
	st.tgt.publishDiscovery()
	st.makeBdev(o)
	if err := st.tgt.CreateSubsystem(SubsystemParams{NQN: testNQN, AllowAnyHost: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.tgt.AddNamespace(testNQN, NamespaceParams{NSID: 1, BdevName: "b0"}); err != nil {
		t.Fatal(err)
	}
	// Listeners are not opened: connections arrive as socketpairs with this address.
	s := st.tgt.subsystem(testNQN)
	s.listeners = append(s.listeners, testListen)
	st.tgt.publishDiscovery()
	return st
}

func (st *stepTarget) makeBdev(o stepOpts) {
	var err error
	switch o.module {
	case "null":
		_, err = bdev.CreateNull(st.bdevs, bdev.NullParams{Name: "b0", NumBlocks: 1 << 16, BlockSize: 512})
	case "malloc":
		_, err = bdev.CreateMalloc(st.bdevs, bdev.MallocParams{Name: "b0", NumBlocks: 1 << 16, BlockSize: 512}, nil)
	case "file":
		// The real backend: io_uring completions arrive asynchronously, from inside
		// the channel's poller, which is where teardown once closed the ring. The
		// stepping goroutine keeps one thread, as a reactor does: io_uring delivers a
		// completion through the submitting thread's task work.
		runtime.LockOSThread()
		st.t.Cleanup(runtime.UnlockOSThread)
		dir := st.t.TempDir()
		if fs, err := os.MkdirTemp("/var/tmp", "sluice-step-"); err == nil {
			dir = fs // O_DIRECT needs a disk file system, not tmpfs
			st.t.Cleanup(func() { os.RemoveAll(fs) })
		}
		_, err = bdev.CreateFile(st.bdevs, bdev.FileParams{Name: "b0", Filename: dir + "/vol", SizeBytes: 64 << 20})
	case "delay":
		_, err = bdev.CreateMalloc(st.bdevs, bdev.MallocParams{Name: "base", NumBlocks: 1 << 16, BlockSize: 512}, nil)
		if err == nil {
			_, err = bdev.CreateDelay(st.bdevs, bdev.DelayParams{Name: "b0", BaseBdevName: "base",
				DelayPolls: max(o.delayPolls, 1), Reorder: true})
		}
	}
	if err != nil {
		st.t.Fatal(err)
	}
}

// advance moves the fake clock.
func (st *stepTarget) advance(d time.Duration) { st.fakeNs.Add(int64(d)) }

var testListen = ListenAddress{TrType: "TCP", AdrFam: "IPv4", TrAddr: "127.0.0.1", TrSvcID: "4420"}

// stepHost is the host end of one socketpair connection.
type stepHost struct {
	st     *stepTarget
	fd     int
	cid    uint16
	hdgst  bool
	ddgst  bool
	out    []byte
	in     []byte
	cntlid uint16
	maxH2C uint32
	kato   uint32 // keep-alive timeout the admin Connect asks for, ms
	// hostID and hostNQN are the host identity Connect sends; zero: the test host's.
	hostID  [16]byte
	hostNQN string
}

func (st *stepTarget) connect() *stepHost {
	st.t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		st.t.Fatal(err)
	}
	st.pg.adoptFD(fds[0], testListen, "test", nil)
	h := &stepHost{st: st, fd: fds[1], out: make([]byte, 0, 1<<20), in: make([]byte, 4<<20)}
	st.t.Cleanup(func() { unix.Close(fds[1]) })
	return h
}

// poll steps the reactor a few times.
func (st *stepTarget) poll(n int) {
	for i := 0; i < n; i++ {
		st.r.PollOnce()
	}
}

func (h *stepHost) send(b []byte) {
	for len(b) > 0 {
		n, err := unix.Write(h.fd, b)
		if err == unix.EAGAIN {
			h.st.poll(1)
			continue
		}
		if err != nil {
			h.st.t.Fatalf("host write: %v", err)
		}
		b = b[n:]
	}
}

// recv steps the target until n bytes came back.
func (h *stepHost) recv(n int) []byte {
	got := 0
	for deadline := time.Now().Add(30 * time.Second); got < n; {
		if time.Now().After(deadline) {
			h.st.t.Fatalf("target sent %d of %d expected bytes", got, n)
		}
		h.st.poll(1)
		m, err := unix.Read(h.fd, h.in[got:n])
		if err == unix.EAGAIN {
			continue
		}
		if err != nil || m == 0 {
			h.st.t.Fatalf("host read after %d bytes: %v (eof=%v)", got, err, m == 0)
		}
		got += m
	}
	return h.in[:n]
}

// recvPDU reads one whole PDU.
func (h *stepHost) recvPDU() (nvme.CommonHeader, []byte) {
	ch, err := nvme.DecodeCommonHeader(h.recv(nvme.CHLen))
	if err != nil {
		h.st.t.Fatal(err)
	}
	copy(h.in[2<<20:], h.in[:nvme.CHLen])
	rest := h.recv(int(ch.PLen) - nvme.CHLen)
	copy(h.in[2<<20+nvme.CHLen:], rest)
	return ch, h.in[2<<20 : 2<<20+int(ch.PLen)]
}

// expectEOF checks that the target closed the connection.
func (h *stepHost) expectEOF() {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		h.st.poll(1)
		var b [1]byte
		n, err := unix.Read(h.fd, b[:])
		if err == unix.EAGAIN {
			continue
		}
		if n == 0 || err != nil {
			return
		}
		h.st.t.Fatalf("unexpected byte %#x after termination", b[0])
	}
	h.st.t.Fatal("target did not close the connection")
}

func (h *stepHost) icreq(hdgst, ddgst bool) {
	var b [nvme.ICReqLen]byte
	nvme.CommonHeader{Type: nvme.PDUTypeICReq, HLen: nvme.ICReqLen, PLen: nvme.ICReqLen}.Put(b[:])
	var dg nvme.DigestFlags
	if hdgst {
		dg |= nvme.DigestHeader
	}
	if ddgst {
		dg |= nvme.DigestData
	}
	(&nvme.ICReq{DGST: dg}).Put(b[:])
	h.send(b[:])
	ch, pdu := h.recvPDU()
	if ch.Type != nvme.PDUTypeICResp {
		h.st.t.Fatalf("got %v, want ICResp", ch.Type)
	}
	resp, _ := nvme.DecodeICResp(pdu)
	h.maxH2C = resp.MAXH2CDATA
	if resp.DGST != dg {
		h.st.t.Fatalf("ICResp digests %v, asked %v", resp.DGST, dg)
	}
	h.hdgst, h.ddgst = hdgst, ddgst
}

func (h *stepHost) layout() nvme.LayoutParams {
	return nvme.LayoutParams{Receiver: nvme.RoleController, HDGST: h.hdgst, DDGST: h.ddgst}
}

// capsule frames a CapsuleCmd with optional in-capsule data into h.out.
func (h *stepHost) capsule(sqe *nvme.SQE, icd []byte) []byte {
	ch := nvme.FrameHeader(nvme.PDUTypeCapsuleCmd, 0, uint32(len(icd)), h.layout())
	b := h.out[:ch.PLen]
	ch.Put(b)
	copy(b[nvme.CHLen:], sqe[:])
	if h.hdgst {
		nvme.SetHeaderDigest(b, nvme.CapsuleCmdHLen)
	}
	if len(icd) > 0 {
		copy(b[ch.PDO:], icd)
		if h.ddgst {
			nvme.PutDigest(b[int(ch.PDO)+len(icd):], nvme.CRC32C(icd))
		}
	}
	return b
}

func (h *stepHost) nextCID() uint16 { h.cid++; return h.cid }

// call sends a command and returns its completion; read data is copied to data.
func (h *stepHost) call(sqe *nvme.SQE, icd []byte, data []byte) nvme.CQE {
	h.st.t.Helper()
	h.send(h.capsule(sqe, icd))
	for {
		ch, pdu := h.recvPDU()
		switch ch.Type {
		case nvme.PDUTypeCapsuleResp:
			return *nvme.CapsuleCQE(pdu)
		case nvme.PDUTypeC2HData:
			d, _ := nvme.DecodeC2HData(pdu)
			copy(data[d.DATAO:], pdu[ch.PDO:uint32(ch.PDO)+d.DATAL])
			if ch.Flags&nvme.CHFlagSuccess != 0 {
				var cqe nvme.CQE
				cqe.SetCID(d.CCCID)
				return cqe
			}
		case nvme.PDUTypeR2T:
			r2t, _ := nvme.DecodeR2T(pdu)
			h.h2c(r2t, data)
		default:
			h.st.t.Fatalf("unexpected %v", ch.Type)
		}
	}
}

// h2c answers an R2T with H2CData PDUs of at most MAXH2CDATA, in order, the last
// one flagged LAST_PDU, as the Linux host does.
func (h *stepHost) h2c(r2t nvme.R2T, data []byte) {
	for off := r2t.R2TO; off < r2t.R2TO+r2t.R2TL; {
		n := min(r2t.R2TO+r2t.R2TL-off, h.maxH2C)
		chunk := data[off : off+n]
		var flags uint8
		if off+n == r2t.R2TO+r2t.R2TL {
			flags = nvme.CHFlagLastPDU
		}
		ch := nvme.FrameHeader(nvme.PDUTypeH2CData, flags, n, h.layout())
		b := h.out[:ch.PLen]
		ch.Put(b)
		(&nvme.H2CData{CCCID: r2t.CCCID, TTAG: r2t.TTAG, DATAO: off, DATAL: n}).Put(b)
		if h.hdgst {
			nvme.SetHeaderDigest(b, nvme.TermReqHLen)
		}
		copy(b[ch.PDO:], chunk)
		if h.ddgst {
			nvme.PutDigest(b[int(ch.PDO)+len(chunk):], nvme.CRC32C(chunk))
		}
		h.send(b)
		off += n
	}
}

func connectSQE(cid, qid, sqsize uint16, cattr uint8) *nvme.SQE {
	var s nvme.SQE
	s.SetOpcode(nvme.OpcodeFabrics)
	s.SetFCTYPE(nvme.FCTConnect)
	s.SetCID(cid)
	s.SetQID(qid)
	s.SetSQSIZE(sqsize - 1)
	s.SetCATTR(cattr)
	s.SetKATO(0)
	s.SetSGL1(nvme.SGLDescriptor{ID: nvme.SGLIDInCapsule, Length: nvme.ConnectDataLen})
	return &s
}

var testHostID = [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

const testHostNQN = "nqn.2014-08.org.nvmexpress:uuid:5a1c3e00-7b2d-4c9e-8f10-2e6d4b8a9c01"

// connectQueue runs Connect (and for the admin queue, CC.EN=1).
func (h *stepHost) connectQueue(qid uint16, cntlid uint16, cattr uint8) nvme.CQE {
	h.st.t.Helper()
	cd := nvme.ConnectData{HostID: testHostID, CNTLID: cntlid, SubNQN: testNQN, HostNQN: testHostNQN}
	if h.hostNQN != "" {
		cd.HostID, cd.HostNQN = h.hostID, h.hostNQN
	}
	var b [nvme.ConnectDataLen]byte
	if err := cd.MarshalTo(&b); err != nil {
		h.st.t.Fatal(err)
	}
	sqsize := uint16(32)
	if qid > 0 {
		sqsize = 128
	}
	sqe := connectSQE(h.nextCID(), qid, sqsize, cattr)
	if qid == 0 {
		sqe.SetKATO(h.kato)
	}
	cqe := h.call(sqe, b[:], nil)
	if !cqe.Status().Success() {
		return cqe
	}
	h.cntlid, _ = nvme.ConnectCNTLID(cqe.DW0())
	if qid == 0 {
		var s nvme.SQE
		s.SetOpcode(nvme.OpcodeFabrics)
		s.SetFCTYPE(nvme.FCTPropertySet)
		s.SetCID(h.nextCID())
		s.SetPropOffset(nvme.PropCC)
		s.SetPropValue(uint64(nvme.CC{EN: true, IOSQES: 6, IOCQES: 4}.Value()))
		if c := h.call(&s, nil, nil); !c.Status().Success() {
			h.st.t.Fatalf("CC.EN=1: %v", c.Status())
		}
	}
	return cqe
}

// ioPair connects an admin queue and one I/O queue.
func (st *stepTarget) ioPair(hdgst, ddgst bool, cattr uint8) (admin, io *stepHost) {
	st.t.Helper()
	admin = st.connect()
	admin.icreq(false, false)
	if c := admin.connectQueue(0, nvme.CNTLIDDynamic, 0); !c.Status().Success() {
		st.t.Fatalf("admin connect: %v", c.Status())
	}
	io = st.connect()
	io.icreq(hdgst, ddgst)
	if c := io.connectQueue(1, admin.cntlid, cattr); !c.Status().Success() {
		st.t.Fatalf("io connect: %v", c.Status())
	}
	return admin, io
}

func rwSQE(op nvme.NVMOpcode, cid uint16, slba uint64, nlb uint16, sgl nvme.SGLDescriptor) *nvme.SQE {
	var s nvme.SQE
	s.SetOpcode(uint8(op))
	s.SetCID(cid)
	s.SetNSID(1)
	s.SetSLBA(slba)
	s.SetNLB(nlb - 1)
	s.SetSGL1(sgl)
	return &s
}

// testLogger discards the target's log unless SLUICE_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
