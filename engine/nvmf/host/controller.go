package host

import (
	"context"
	"fmt"
	"sync"
	"time"

	"sluice/engine/proto/nvme"
)

// Controller is an association with one NVMe-oF controller: its admin queue, the
// values read at bring-up, and the I/O queues created on it. Its methods are safe for
// concurrent use.
type Controller struct {
	opts   Options
	addr   string
	subnqn string
	disc   bool

	admin  *adminQueue
	cntlid uint16
	cap    nvme.CAP
	vs     uint32
	id     nvme.IdentifyController
	ioSize int // I/O queue entries after the CAP.MQES and MAXCMD limits
	ioICD  int // in-capsule data on I/O queues
	nIOQ   int // I/O queues granted by Set Features 07h

	mu     sync.Mutex
	ioqs   map[uint16]*IOQueue // guarded by mu; also marks QIDs in use
	kaErr  error               // guarded by mu
	closed bool                // guarded by mu

	kaStop    chan struct{}
	kaDone    chan struct{}
	closeOnce sync.Once
}

// Connect opens an association with subsystem subnqn at addr ("host:port") and brings
// the controller up as the Linux host does (PROTOCOLS.md §1.5): ICReq/ICResp, Fabrics
// Connect on the admin queue with CNTLID FFFFh, Property Get CAP and VS, Property Set
// CC (EN=1, IOSQES=6, IOCQES=4), CSTS.RDY polled within CAP.TO, Identify Controller
// checked against the Linux hard gates, and (except on a discovery controller) Set
// Features Number of Queues. A keep-alive goroutine then sends Keep Alive every KATO/2
// unless KATO is negative or ManualKeepAlive is set.
func Connect(ctx context.Context, addr, subnqn string, opts Options) (*Controller, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := nvme.ValidateNQN(subnqn); err != nil {
		return nil, fmt.Errorf("subsystem nqn: %w", err)
	}
	c := &Controller{
		opts:   o,
		addr:   addr,
		subnqn: subnqn,
		disc:   subnqn == nvme.DiscoveryNQN,
		ioqs:   make(map[uint16]*IOQueue),
		kaStop: make(chan struct{}),
		kaDone: make(chan struct{}),
	}
	pc, err := dial(ctx, &o, addr)
	if err != nil {
		return nil, err
	}
	c.admin = newAdminQueue(pc, o.AdminQueueSize, !o.DisableSQFlow)
	if err := c.bringUp(ctx); err != nil {
		close(c.kaDone)
		c.Close()
		return nil, err
	}
	if o.KATO > 0 && !o.ManualKeepAlive {
		go c.keepAlive(o.KATO / 2)
	} else {
		close(c.kaDone)
	}
	return c, nil
}

// bringUp runs the admin sequence after ICResp.
func (c *Controller) bringUp(ctx context.Context) error {
	if err := c.connectAdmin(ctx); err != nil {
		return err
	}
	capv, err := c.PropertyGet(ctx, nvme.PropCAP)
	if err != nil {
		return fmt.Errorf("property get CAP: %w", err)
	}
	c.cap = nvme.DecodeCAP(capv)
	vs, err := c.PropertyGet(ctx, nvme.PropVS)
	if err != nil {
		return fmt.Errorf("property get VS: %w", err)
	}
	c.vs = uint32(vs)
	if err := c.checkCAP(); err != nil {
		return err
	}
	if err := c.enable(ctx); err != nil {
		return err
	}
	id, err := c.IdentifyController(ctx)
	if err != nil {
		return fmt.Errorf("identify controller: %w", err)
	}
	c.id = *id
	if err := c.checkIdentify(); err != nil {
		return err
	}
	c.ioSize = min(c.opts.QueueSize, int(c.cap.MQES)+1)
	if c.id.MAXCMD != 0 {
		c.ioSize = min(c.ioSize, int(c.id.MAXCMD))
	}
	c.ioICD = max(int(c.id.IOCCSZ)*16-nvme.SQELen, 0)
	switch {
	case c.opts.MaxICD < 0:
		c.ioICD = 0
	case c.opts.MaxICD > 0:
		c.ioICD = min(c.ioICD, c.opts.MaxICD)
	}
	if c.disc {
		return nil
	}
	return c.setQueueCount(ctx)
}

// connectAdmin sends the admin queue's Fabrics Connect (Fabrics §6.3).
func (c *Controller) connectAdmin(ctx context.Context) error {
	cqe, err := c.connect(ctx, c.admin.exec, 0, uint16(c.opts.AdminQueueSize-1), c.opts.katoMs(), nvme.CNTLIDDynamic)
	if err != nil {
		return err
	}
	cntlid, authreq := nvme.ConnectCNTLID(cqe.DW0())
	if authreq != 0 {
		return fmt.Errorf("admin connect: controller requires in-band authentication (authreq %#x): %w",
			authreq, ErrUnsupported)
	}
	if cntlid >= 0xFFF0 {
		// FFF0h..FFFFh are reserved controller IDs (Base §3.1.3.3).
		return gateErr(fmt.Sprintf("connect returned reserved CNTLID %#x", cntlid))
	}
	c.cntlid = cntlid
	return nil
}

type execFunc func(ctx context.Context, timeout time.Duration, build func(*nvme.SQE), data []byte) (nvme.CQE, error)

// connect sends a Fabrics Connect on a queue with the host's identity.
func (c *Controller) connect(ctx context.Context, exec execFunc, qid, sqsize uint16, kato uint32, cntlid uint16) (nvme.CQE, error) {
	cd := nvme.ConnectData{HostID: c.opts.HostID, CNTLID: cntlid, SubNQN: c.subnqn, HostNQN: c.opts.HostNQN}
	var b [nvme.ConnectDataLen]byte
	if err := cd.MarshalTo(&b); err != nil {
		return nvme.CQE{}, fmt.Errorf("connect data: %w", err)
	}
	var cattr uint8
	if c.opts.DisableSQFlow {
		cattr |= nvme.CATTRDisableSQFlowCtrl
	}
	cqe, err := exec(ctx, c.opts.Timeout, func(s *nvme.SQE) {
		s.SetOpcode(nvme.OpcodeFabrics)
		s.SetFCTYPE(nvme.FCTConnect)
		s.SetRECFMT(0)
		s.SetQID(qid)
		s.SetSQSIZE(sqsize)
		s.SetCATTR(cattr)
		s.SetKATO(kato)
	}, b[:])
	if err != nil {
		return cqe, fmt.Errorf("connect qid %d: %w", qid, err)
	}
	if st := cqe.Status(); !st.Success() {
		return cqe, &StatusError{Status: st, DW0: cqe.DW0(), Op: fmt.Sprintf("connect qid %d", qid)}
	}
	return cqe, nil
}

// checkCAP applies the host's CAP checks: MQES is at least 1 (0 is invalid, Base
// §3.1.4.1), and the 4 KiB page this host uses is allowed (Linux refuses MPSMIN above
// its page size).
func (c *Controller) checkCAP() error {
	if c.cap.MQES == 0 {
		return gateErr("CAP.MQES is 0")
	}
	if c.cap.MPSMIN != 0 {
		return gateErr(fmt.Sprintf("CAP.MPSMIN %d: minimum page size above 4 KiB", c.cap.MPSMIN))
	}
	return nil
}

// enable writes CC (EN=1, CSS, MPS 4 KiB, round robin, IOSQES 6, IOCQES 4) and polls
// CSTS.RDY until it is 1, within CAP.TO (500 ms units).
func (c *Controller) enable(ctx context.Context) error {
	cc := nvme.CC{EN: true, CSS: 0, MPS: 0, AMS: 0, IOSQES: 6, IOCQES: 4}
	if c.cap.CSS&nvme.CSSIOCS != 0 {
		cc.CSS = 6 // all supported I/O command sets, as Linux selects when CAP.CSS bit 6 is set
	}
	if err := c.PropertySet(ctx, nvme.PropCC, uint64(cc.Value())); err != nil {
		return fmt.Errorf("property set CC: %w", err)
	}
	limit := time.Duration(int(c.cap.TO)+1) * 500 * time.Millisecond
	err := c.pollCSTS(ctx, limit, func(s nvme.CSTS) bool { return s.RDY })
	if err != nil {
		return fmt.Errorf("waiting for CSTS.RDY: %w", err)
	}
	return nil
}

// pollCSTS reads CSTS until done returns true, CFS is set, or limit passes.
func (c *Controller) pollCSTS(ctx context.Context, limit time.Duration, done func(nvme.CSTS) bool) error {
	deadline := time.Now().Add(limit)
	wait := time.Millisecond
	for {
		v, err := c.PropertyGet(ctx, nvme.PropCSTS)
		if err != nil {
			return err
		}
		s := nvme.DecodeCSTS(uint32(v))
		if s.CFS {
			return gateErr("CSTS.CFS: controller fatal status")
		}
		if done(s) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("CSTS %#x after %v: %w", uint32(v), limit, ErrTimeout)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// checkIdentify applies the Linux host's hard gates (nvme_check_ctrl_fabric_info and
// nvme_tcp_setup_ctrl, PROTOCOLS.md §1.5) and a few consistency checks of its own.
func (c *Controller) checkIdentify() error {
	id := &c.id
	switch {
	case id.CNTLID != c.cntlid:
		return gateErr(fmt.Sprintf("Identify CNTLID %d, Connect returned %d", id.CNTLID, c.cntlid))
	case !c.disc && id.KAS == 0:
		return gateErr("KAS 0: keep-alive support is mandatory for fabrics")
	case !c.disc && id.IOCCSZ < 4:
		return gateErr(fmt.Sprintf("IOCCSZ %d < 4", id.IOCCSZ))
	case !c.disc && id.IORCSZ < 1:
		return gateErr(fmt.Sprintf("IORCSZ %d < 1", id.IORCSZ))
	case id.ICDOFF != 0:
		return gateErr(fmt.Sprintf("ICDOFF %d: in-capsule data offset is not supported", id.ICDOFF))
	case id.SGLS&3 == 0:
		return gateErr("SGLS bits 1:0 are 0: mandatory SGLs are not supported")
	case id.SGLS&3 == 3:
		return gateErr("SGLS bits 1:0 are 11b, a reserved value")
	case nvme.NQNString(id.SUBNQN[:]) != c.subnqn:
		return gateErr(fmt.Sprintf("Identify SUBNQN %q, connected to %q", nvme.NQNString(id.SUBNQN[:]), c.subnqn))
	case id.VER != 0 && id.VER != c.vs:
		return gateErr(fmt.Sprintf("Identify VER %#x differs from property VS %#x", id.VER, c.vs))
	}
	if !c.disc {
		if id.SQES&0xF > 6 || id.SQES>>4 < 6 || id.CQES&0xF > 4 || id.CQES>>4 < 4 {
			return gateErr(fmt.Sprintf("SQES %#x / CQES %#x exclude 64-byte SQEs and 16-byte CQEs", id.SQES, id.CQES))
		}
	}
	if c.vs >= nvme.VS14 {
		// CNTRLTYPE is mandatory from NVMe 1.4 on.
		want := nvme.CntrlTypeIO
		if c.disc {
			want = nvme.CntrlTypeDiscovery
		}
		if id.CNTRLTYPE != want {
			return gateErr(fmt.Sprintf("CNTRLTYPE %d, want %d", id.CNTRLTYPE, want))
		}
	}
	return nil
}

// setQueueCount asks for NumIOQueues I/O queues (Set Features 07h) and keeps what was
// granted; a controller may grant more than asked, the host uses no more than it asked.
func (c *Controller) setQueueCount(ctx context.Context) error {
	n := uint16(c.opts.NumIOQueues - 1)
	dw0, err := c.SetFeature(ctx, nvme.FeatNumberOfQueues, 0, nvme.NumberOfQueues(n, n), false, nil)
	if err != nil {
		return fmt.Errorf("set features number of queues: %w", err)
	}
	nsqa, ncqa := nvme.DecodeNumberOfQueues(dw0)
	c.nIOQ = min(int(min(nsqa, ncqa))+1, c.opts.NumIOQueues)
	return nil
}

// keepAlive sends Keep Alive every period until Close. A failed Keep Alive ends the
// association: the controller will tear it down anyway when KATO expires.
func (c *Controller) keepAlive(period time.Duration) {
	defer close(c.kaDone)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-c.kaStop:
			return
		case <-t.C:
		}
		if err := c.KeepAlive(context.Background()); err != nil {
			select {
			case <-c.kaStop:
				return
			default:
			}
			c.mu.Lock()
			if c.kaErr == nil {
				c.kaErr = fmt.Errorf("keep alive: %w", err)
			}
			c.mu.Unlock()
			c.admin.q.c.close()
			return
		}
	}
}

// adminExec runs an admin command with the controller's timeout; a non-success status
// is a *StatusError.
func (c *Controller) adminExec(ctx context.Context, op string, build func(*nvme.SQE), data []byte) (nvme.CQE, error) {
	cqe, err := c.admin.exec(ctx, c.opts.Timeout, build, data)
	if err != nil {
		return cqe, fmt.Errorf("%s: %w", op, err)
	}
	if st := cqe.Status(); !st.Success() {
		return cqe, &StatusError{Status: st, DW0: cqe.DW0(), Op: op}
	}
	return cqe, nil
}

// AdminExec sends any admin command and returns its completion, whatever the status:
// the raw path for tests that probe the target's answers. The CID, PSDT and SGL1 are
// filled in; data is the transfer buffer, its direction taken from the opcode (or
// FCTYPE for a Fabrics command).
func (c *Controller) AdminExec(ctx context.Context, sqe *nvme.SQE, data []byte) (nvme.CQE, error) {
	cp := *sqe
	return c.admin.exec(ctx, c.opts.Timeout, func(s *nvme.SQE) { *s = cp }, data)
}

// PropertyGet reads a controller property (Fabrics §6.5). The size (4 or 8 bytes)
// follows the offset; offsets fabrics does not define are read as 4 bytes.
func (c *Controller) PropertyGet(ctx context.Context, ofst uint32) (uint64, error) {
	size, _ := nvme.PropertySize(ofst)
	attrib := nvme.PropSize4
	if size == 8 {
		attrib = nvme.PropSize8
	}
	cqe, err := c.adminExec(ctx, fmt.Sprintf("property get %#x", ofst), func(s *nvme.SQE) {
		s.SetOpcode(nvme.OpcodeFabrics)
		s.SetFCTYPE(nvme.FCTPropertyGet)
		s.SetPropAttrib(attrib)
		s.SetPropOffset(ofst)
	}, nil)
	if err != nil {
		return 0, err
	}
	if size == 8 {
		return uint64(cqe.DW0()) | uint64(cqe.DW1())<<32, nil
	}
	return uint64(cqe.DW0()), nil
}

// PropertySet writes a controller property (Fabrics §6.6).
func (c *Controller) PropertySet(ctx context.Context, ofst uint32, v uint64) error {
	size, _ := nvme.PropertySize(ofst)
	attrib := nvme.PropSize4
	if size == 8 {
		attrib = nvme.PropSize8
	}
	_, err := c.adminExec(ctx, fmt.Sprintf("property set %#x", ofst), func(s *nvme.SQE) {
		s.SetOpcode(nvme.OpcodeFabrics)
		s.SetFCTYPE(nvme.FCTPropertySet)
		s.SetPropAttrib(attrib)
		s.SetPropOffset(ofst)
		s.SetPropValue(v)
	}, nil)
	return err
}

// Identify returns the 4096-byte data structure for cns (Base §5.17).
func (c *Controller) Identify(ctx context.Context, cns nvme.CNS, cntid uint16, nsid uint32, csi uint8) ([]byte, error) {
	b := make([]byte, nvme.IdentifyLen)
	_, err := c.adminExec(ctx, fmt.Sprintf("identify cns %#x nsid %d", uint8(cns), nsid), func(s *nvme.SQE) {
		s.SetOpcode(uint8(nvme.AdminIdentify))
		s.SetNSID(nsid)
		s.SetIdentify(cns, cntid, csi)
	}, b)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// IdentifyController reads Identify Controller (CNS 01h) afresh.
func (c *Controller) IdentifyController(ctx context.Context) (*nvme.IdentifyController, error) {
	b, err := c.Identify(ctx, nvme.CNSController, 0, 0, 0)
	if err != nil {
		return nil, err
	}
	id := new(nvme.IdentifyController)
	id.Unmarshal((*[nvme.IdentifyLen]byte)(b))
	return id, nil
}

// IdentifyNamespace reads Identify Namespace (CNS 00h).
func (c *Controller) IdentifyNamespace(ctx context.Context, nsid uint32) (*nvme.IdentifyNamespace, error) {
	b, err := c.Identify(ctx, nvme.CNSNamespace, 0, nsid, 0)
	if err != nil {
		return nil, err
	}
	ns := new(nvme.IdentifyNamespace)
	ns.Unmarshal((*[nvme.IdentifyLen]byte)(b))
	return ns, nil
}

// ActiveNamespaces reads the Active Namespace ID list (CNS 02h), following it past
// 1024 entries. The list must be strictly increasing, above the NSID asked for, and
// free of FFFFFFFEh/FFFFFFFFh (Base §5.17.2.2).
func (c *Controller) ActiveNamespaces(ctx context.Context) ([]uint32, error) {
	var all []uint32
	after := uint32(0)
	for {
		b, err := c.Identify(ctx, nvme.CNSActiveNSList, 0, after, 0)
		if err != nil {
			return nil, err
		}
		var l nvme.NSList
		l.Unmarshal((*[nvme.IdentifyLen]byte)(b))
		for _, id := range l.List() {
			if id <= after || id >= 0xFFFFFFFE {
				return nil, gateErr(fmt.Sprintf("active namespace list: NSID %#x after %#x", id, after))
			}
			after = id
			all = append(all, id)
		}
		if l.N < nvme.NSListLen {
			return all, nil
		}
	}
}

// NamespaceDescriptors reads the Namespace Identification Descriptor list (CNS 03h).
func (c *Controller) NamespaceDescriptors(ctx context.Context, nsid uint32) ([]nvme.NSIDDescriptor, error) {
	b, err := c.Identify(ctx, nvme.CNSNSIDDescriptorList, 0, nsid, 0)
	if err != nil {
		return nil, err
	}
	ds, err := nvme.DecodeNSIDDescriptors(b)
	if err != nil {
		return nil, &ProtocolError{Reason: "namespace identification descriptors", Err: err}
	}
	return ds, nil
}

// GetLogPage reads length bytes of log lid at byte offset (both multiples of 4) with
// NUMDL/NUMDU and LPO (Base §5.16). rae asks the controller to retain the asynchronous
// event the log clears.
func (c *Controller) GetLogPage(ctx context.Context, lid nvme.LogPageID, nsid uint32, offset uint64, length int, rae bool) ([]byte, error) {
	if length <= 0 || length%4 != 0 || offset%4 != 0 || uint64(length)/4 > 1<<32 {
		return nil, fmt.Errorf("get log page %#x: offset %d length %d: %w", uint8(lid), offset, length, ErrBadLength)
	}
	b := make([]byte, length)
	g := nvme.GetLogPage{LID: lid, RAE: rae, NUMD: nvme.NUMDFor(uint64(length)), LPO: offset}
	_, err := c.adminExec(ctx, fmt.Sprintf("get log page %#x", uint8(lid)), func(s *nvme.SQE) {
		s.SetOpcode(uint8(nvme.AdminGetLogPage))
		s.SetNSID(nsid)
		g.Put(s)
	}, b)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// SMARTLog reads the controller-wide SMART / Health log (LID 02h, NSID FFFFFFFFh).
func (c *Controller) SMARTLog(ctx context.Context) (*nvme.SMARTLog, error) {
	b, err := c.GetLogPage(ctx, nvme.LogSMART, 0xFFFFFFFF, 0, nvme.SMARTLogLen, false)
	if err != nil {
		return nil, err
	}
	l := new(nvme.SMARTLog)
	l.Unmarshal((*[nvme.SMARTLogLen]byte)(b))
	return l, nil
}

// ErrorLog reads the Error Information log (LID 01h): ELPE+1 entries, empty ones
// (ErrorCount 0) included.
func (c *Controller) ErrorLog(ctx context.Context) ([]nvme.ErrorLogEntry, error) {
	n := int(c.id.ELPE) + 1
	b, err := c.GetLogPage(ctx, nvme.LogError, 0, 0, n*nvme.ErrorLogEntryLen, false)
	if err != nil {
		return nil, err
	}
	es := make([]nvme.ErrorLogEntry, n)
	for i := range es {
		es[i].Unmarshal((*[nvme.ErrorLogEntryLen]byte)(b[i*nvme.ErrorLogEntryLen:]))
	}
	return es, nil
}

// GetFeature reads feature fid (Get Features, Base §5.15) with select sel (SELCurrent
// ...) and CDW11; buf receives the feature's data structure if it has one. It returns
// the completion's DW0.
func (c *Controller) GetFeature(ctx context.Context, fid nvme.FeatureID, nsid uint32, sel uint8, cdw11 uint32, buf []byte) (uint32, error) {
	cqe, err := c.adminExec(ctx, fmt.Sprintf("get features %#x", uint8(fid)), func(s *nvme.SQE) {
		s.SetOpcode(uint8(nvme.AdminGetFeatures))
		s.SetNSID(nsid)
		s.SetCDW10(uint32(fid) | uint32(sel&7)<<8)
		s.SetCDW11(cdw11)
	}, buf)
	return cqe.DW0(), err
}

// SetFeature sets feature fid (Set Features, Base §5.27) to cdw11, with data for the
// features that carry a data structure, saved across resets if save. It returns the
// completion's DW0.
func (c *Controller) SetFeature(ctx context.Context, fid nvme.FeatureID, nsid uint32, cdw11 uint32, save bool, data []byte) (uint32, error) {
	cdw10 := uint32(fid)
	if save {
		cdw10 |= nvme.FeatureSaveBit
	}
	cqe, err := c.adminExec(ctx, fmt.Sprintf("set features %#x", uint8(fid)), func(s *nvme.SQE) {
		s.SetOpcode(uint8(nvme.AdminSetFeatures))
		s.SetNSID(nsid)
		s.SetCDW10(cdw10)
		s.SetCDW11(cdw11)
	}, data)
	return cqe.DW0(), err
}

// KeepAlive sends one Keep Alive (Base §5.25).
func (c *Controller) KeepAlive(ctx context.Context) error {
	_, err := c.adminExec(ctx, "keep alive", func(s *nvme.SQE) {
		s.SetOpcode(uint8(nvme.AdminKeepAlive))
	}, nil)
	return err
}

// EnableAsyncEvents sets Asynchronous Event Configuration (FID 0Bh) to mask
// (nvme.AEC* bits) and from then on keeps an Asynchronous Event Request outstanding;
// events arrive on AsyncEvents.
func (c *Controller) EnableAsyncEvents(ctx context.Context, mask uint32) error {
	if _, err := c.SetFeature(ctx, nvme.FeatAsyncEventConfig, 0, mask, false, nil); err != nil {
		return err
	}
	return c.admin.enableAER()
}

// AsyncEvents returns the channel asynchronous events are delivered on once
// EnableAsyncEvents has run. It holds 16 events; further ones are dropped (counted by
// DroppedAsyncEvents) rather than stall the admin queue. It is closed when the admin
// connection ends.
func (c *Controller) AsyncEvents() <-chan nvme.AsyncEvent { return c.admin.aen }

// DroppedAsyncEvents counts events lost because AsyncEvents was full.
func (c *Controller) DroppedAsyncEvents() uint64 { return c.admin.aenDropped.Load() }

// AsyncEventStatus returns the status that ended the AER loop (an AER completed with
// an error), or success while it runs.
func (c *Controller) AsyncEventStatus() nvme.Status {
	c.admin.mu.Lock()
	defer c.admin.mu.Unlock()
	return c.admin.aerStatus
}

// Shutdown shuts the controller down cleanly, as the Linux host does when it deletes a
// controller: it stops keep-alive, closes the I/O queues (a controller reports
// shutdown complete once its I/O queues are gone), sets CC.SHN to normal, waits for
// CSTS.SHST complete (RTD3E or 5 s, whichever is longer), then closes the association.
func (c *Controller) Shutdown(ctx context.Context) error {
	c.stopKeepAlive()
	c.closeIOQueues()
	err := c.shutdown(ctx)
	c.Close()
	return err
}

func (c *Controller) shutdown(ctx context.Context) error {
	v, err := c.PropertyGet(ctx, nvme.PropCC)
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	cc := nvme.DecodeCC(uint32(v))
	cc.SHN = nvme.SHNNormal
	if err := c.PropertySet(ctx, nvme.PropCC, uint64(cc.Value())); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	limit := max(5*time.Second, time.Duration(c.id.RTD3E)*time.Microsecond)
	err = c.pollCSTS(ctx, limit, func(s nvme.CSTS) bool { return s.SHST == nvme.SHSTComplete })
	if err != nil {
		return fmt.Errorf("shutdown: waiting for CSTS.SHST complete: %w", err)
	}
	return nil
}

func (c *Controller) stopKeepAlive() {
	c.mu.Lock()
	select {
	case <-c.kaStop:
	default:
		close(c.kaStop)
	}
	c.mu.Unlock()
	<-c.kaDone
}

func (c *Controller) closeIOQueues() {
	c.mu.Lock()
	qs := make([]*IOQueue, 0, len(c.ioqs))
	for _, q := range c.ioqs {
		if q != nil { // nil: a queue still connecting
			qs = append(qs, q)
		}
	}
	c.mu.Unlock()
	for _, q := range qs {
		q.Close()
	}
}

// Close ends the association abruptly: keep-alive stops and every connection (admin
// and I/O) is closed without a shutdown notification. It is idempotent.
func (c *Controller) Close() error {
	c.closeOnce.Do(func() {
		c.stopKeepAlive()
		c.closeIOQueues()
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.admin.close()
	})
	return nil
}

// Err returns the error that ended the association (a protocol violation, a
// C2HTermReq, a failed keep-alive, the connection's end), or nil while it is alive.
// After Close it returns ErrClosed.
func (c *Controller) Err() error {
	c.mu.Lock()
	kaErr := c.kaErr
	c.mu.Unlock()
	if kaErr != nil {
		return kaErr
	}
	return c.admin.err()
}

// CNTLID returns the controller ID the admin Connect returned.
func (c *Controller) CNTLID() uint16 { return c.cntlid }

// IdentifyData returns the Identify Controller data read at Connect.
func (c *Controller) IdentifyData() nvme.IdentifyController { return c.id }

// CAP returns the Controller Capabilities read at Connect.
func (c *Controller) CAP() nvme.CAP { return c.cap }

// Version returns the VS property read at Connect.
func (c *Controller) Version() uint32 { return c.vs }

// SubNQN returns the subsystem NQN this controller belongs to.
func (c *Controller) SubNQN() string { return c.subnqn }

// HostNQN returns the host NQN sent in Connect.
func (c *Controller) HostNQN() string { return c.opts.HostNQN }

// MaxH2CData returns the admin connection's MAXH2CDATA from ICResp.
func (c *Controller) MaxH2CData() uint32 { return c.admin.q.c.maxH2C }

// IOQueueSize returns the entries of each I/O queue (Options.QueueSize, lowered to
// CAP.MQES+1 and MAXCMD).
func (c *Controller) IOQueueSize() int { return c.ioSize }

// IOMaxICD returns the in-capsule data limit of the I/O queues.
func (c *Controller) IOMaxICD() int { return c.ioICD }

// NumIOQueues returns how many I/O queues the controller granted (and this host may
// create), 0 on a discovery controller.
func (c *Controller) NumIOQueues() int { return c.nIOQ }
