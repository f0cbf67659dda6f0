package nvmf

import (
	"math/bits"

	"sluice/engine/proto/nvme"
	"sluice/engine/reservation"
)

// execAdmin runs an admin command on the controller's reactor (the admin queue's).
// Admin commands are the control path: they may allocate.
func (ctrlr *Ctrlr) execAdmin(r *request) {
	ctrlr.touchKeepAlive()
	op := r.sqe.AdminOpcode()
	if !ctrlr.cc.EN || !ctrlr.csts.RDY {
		r.complete(nvme.StatusCommandSequenceError)
		return
	}
	if ctrlr.subsys.discovery && !discoveryAllows(op, r.sqe.FeatureID()) {
		r.complete(nvme.StatusInvalidOpcode.WithDNR())
		return
	}
	switch op {
	case nvme.AdminIdentify:
		r.complete(ctrlr.identify(r))
	case nvme.AdminGetLogPage:
		r.complete(ctrlr.getLogPage(r))
	case nvme.AdminSetFeatures:
		if st := ctrlr.setFeatures(r); st != statusPending {
			r.complete(st)
		}
	case nvme.AdminGetFeatures:
		r.complete(ctrlr.getFeatures(r))
	case nvme.AdminAsyncEventRequest:
		if len(ctrlr.aers) >= aerLimit {
			r.complete(nvme.StatusAsyncEventRequestLimitExceeded)
			return
		}
		r.state = reqStateAwaitEvent
		ctrlr.aers = append(ctrlr.aers, r)
		ctrlr.deliverEvents()
	case nvme.AdminKeepAlive:
		r.complete(nvme.StatusSuccess)
	case nvme.AdminAbort:
		// Commands complete in microseconds here; like nvmet, report "not aborted"
		// (DW0 bit 0 set) and let the command finish.
		r.cqe.SetDW0(1)
		r.complete(nvme.StatusSuccess)
	default:
		r.complete(nvme.StatusInvalidOpcode.WithDNR())
	}
}

// discoveryAllows lists what a discovery controller serves (SPDK's rule).
func discoveryAllows(op nvme.AdminOpcode, fid nvme.FeatureID) bool {
	switch op {
	case nvme.AdminIdentify, nvme.AdminGetLogPage, nvme.AdminKeepAlive, nvme.AdminAsyncEventRequest:
		return true
	case nvme.AdminSetFeatures, nvme.AdminGetFeatures:
		return fid == nvme.FeatKeepAliveTimer || fid == nvme.FeatAsyncEventConfig
	}
	return false
}

// identifyPage checks that the host gave room for a 4 KiB identify structure.
func identifyPage(r *request) (*[nvme.IdentifyLen]byte, nvme.Status) {
	if r.dir != nvme.DirCtrlToHost || len(r.data) < nvme.IdentifyLen {
		return nil, nvme.StatusDataSGLLengthInvalid.WithDNR()
	}
	clear(r.data)
	return (*[nvme.IdentifyLen]byte)(r.data[:nvme.IdentifyLen]), nvme.StatusSuccess
}

func (ctrlr *Ctrlr) identify(r *request) nvme.Status {
	cns := r.sqe.IdentifyCNS()
	page, st := identifyPage(r)
	if !st.Success() {
		return st
	}
	if ctrlr.subsys.discovery && cns != nvme.CNSController {
		return nvme.StatusInvalidField.WithDNR()
	}
	nsid := r.sqe.NSID()
	switch cns {
	case nvme.CNSController:
		id := ctrlr.identifyController()
		id.MarshalTo(page)
	case nvme.CNSNamespace:
		if nsid == 0 || nsid == 0xFFFFFFFF || nsid > ctrlr.subsys.maxNS {
			return nvme.StatusInvalidNamespaceOrFormat.WithDNR()
		}
		// An inactive NSID in range answers zeros (Base §5.15.2.1).
		if ns := ctrlr.subsys.namespaces().get(nsid); ns != nil {
			id := identifyNamespace(ns)
			id.MarshalTo(page)
		}
	case nvme.CNSActiveNSList:
		if nsid >= 0xFFFFFFFE {
			return nvme.StatusInvalidNamespaceOrFormat.WithDNR()
		}
		var l nvme.NSList
		nvme.ActiveNSList(&l, ctrlr.subsys.namespaces().active, nsid)
		l.MarshalTo(page)
	case nvme.CNSIOCSNamespace:
		// The NVM command set's I/O-command-set-specific namespace structure: all
		// zeros for a namespace without end-to-end protection or extended formats.
		if r.sqe.IdentifyCSI() != 0 {
			return nvme.StatusInvalidField.WithDNR()
		}
		if ctrlr.subsys.namespaces().get(nsid) == nil {
			return nvme.StatusInvalidNamespaceOrFormat.WithDNR()
		}
	case nvme.CNSIOCSController:
		// The NVM set's controller structure: zeros (no VSL, WZSL, WUSL, DMRL limits).
		if r.sqe.IdentifyCSI() != 0 {
			return nvme.StatusInvalidField.WithDNR()
		}
	case nvme.CNSNSIDDescriptorList:
		ns := ctrlr.subsys.namespaces().get(nsid)
		if ns == nil {
			return nvme.StatusInvalidNamespaceOrFormat.WithDNR()
		}
		ds := []nvme.NSIDDescriptor{{NIDT: nvme.NIDTEUI64}, {NIDT: nvme.NIDTNGUID}, {NIDT: nvme.NIDTUUID}}
		copy(ds[0].NID[:], ns.EUI64[:])
		copy(ds[1].NID[:], ns.NGUID[:])
		copy(ds[2].NID[:], ns.UUID[:])
		if err := nvme.MarshalNSIDDescriptors(page, ds); err != nil {
			return nvme.StatusInternalError
		}
	default:
		return nvme.StatusInvalidField.WithDNR()
	}
	return nvme.StatusSuccess
}

// identifyController fills only what sluice serves. The Linux host's hard gates are
// KAS ≠ 0, SGLS bits 1:0 ≠ 0, IOCCSZ ≥ 4, IORCSZ ≥ 1, ICDOFF = 0 and a CNTLID that
// matches Connect.
func (ctrlr *Ctrlr) identifyController() nvme.IdentifyController {
	t, s := ctrlr.t, ctrlr.subsys
	var id nvme.IdentifyController
	nvme.PutASCII(id.SN[:], s.serial)
	nvme.PutASCII(id.MN[:], s.model)
	nvme.PutASCII(id.FR[:], t.firmware)
	id.RAB = 6
	id.CNTLID = ctrlr.cntlid
	id.VER = nvmeVersion
	id.CTRATT = nvme.CTRATTHostID128
	id.KAS = 1 // keep-alive granularity: 100 ms
	id.ACL = 3
	id.AERL = aerLimit - 1
	id.ELPE = errLogLen - 1
	id.MAXCMD = t.opts.MaxQueueDepth
	id.SQES, id.CQES = 0x66, 0x44
	nvme.PutNQN(id.SUBNQN[:], s.nqn)
	id.IORCSZ = 1
	id.MSDBD = 1
	// SGLs without alignment requirements; bit 20: the SGL address can be an offset
	// into in-capsule data.
	id.SGLS = 1 | 1<<20
	if s.discovery {
		id.CNTRLTYPE = 2
		id.LPA = nvme.LPAExtendedData
		id.IOCCSZ = nvme.SQELen / 16
		return id
	}
	id.CNTRLTYPE = 1
	id.CMIC = nvme.CMICMultiPort | nvme.CMICMultiCtrl
	id.MDTS = t.opts.mdts()
	id.OAES = nvme.OAESNSAttribute
	id.FRMW = 1<<1 | 1 // one slot, read-only
	id.LPA = nvme.LPACommandEffects | nvme.LPAExtendedData
	id.NN = s.maxNS
	id.MNAN = s.maxNS
	id.ONCS = nvme.ONCSDSM | nvme.ONCSWriteZeroes
	if t.resv != nil {
		id.ONCS |= nvme.ONCSReservations
	}
	// Volatile write cache present; bits 2:1 = 10b: Flush with NSID FFFFFFFFh is not
	// supported (a flush names its namespace).
	id.VWC = 1 | 2<<1
	id.IOCCSZ = (nvme.SQELen + t.opts.InCapsuleDataSize) / 16
	// One power state, so that tools that print it show something sane.
	id.PSD[0] = nvme.PowerState{MP: 2500, ENLAT: 16, EXLAT: 4}
	return id
}

func identifyNamespace(ns *Namespace) nvme.IdentifyNamespace {
	b := ns.Bdev
	var id nvme.IdentifyNamespace
	id.NSZE = b.NumBlocks()
	id.NCAP = id.NSZE
	id.NUSE = id.NSZE
	id.NMIC = 1 // may be attached to several controllers
	lbads := uint8(bits.TrailingZeros32(b.BlockSize()))
	id.LBAF[0] = nvme.LBAFormat{LBADS: lbads}
	if b.BlockSize() < 4096 {
		// Tell the host that 4 KiB is the natural unit (NSFEAT bit 4 enables the
		// NPWG/NPWA/NPDG/NPDA/NOWS fields): Linux sets its io_min/io_opt from them.
		per := uint16(4096/b.BlockSize()) - 1
		id.NSFEAT |= 1 << 4
		id.NPWG, id.NPWA, id.NPDG, id.NPDA, id.NOWS = per, per, per, per, per
	}
	caps := b.Caps()
	if caps.Unmap {
		id.NSFEAT |= 1 // thin provisioning: deallocated blocks free space
		if caps.UnmapReadsZero {
			// DLFEAT bits 2:0 = 001b: deallocated blocks read as zeros; bit 3: Write
			// Zeroes with DEAC deallocates.
			id.DLFEAT = 1 | 1<<3
		}
	}
	id.NGUID = ns.NGUID
	id.EUI64 = ns.EUI64
	if ns.vol != nil {
		// All six types, Ignore Existing Key as the spec defines it for 1.3+, and
		// persistence through power loss (kept by the group, or the standalone node's
		// store).
		id.RESCAP = nvme.RESCAPAll
	}
	return id
}

// logPage copies the requested window [LPO, LPO+len) of a log into the host buffer.
func logPage(r *request, full []byte, g nvme.GetLogPage) nvme.Status {
	if r.dir != nvme.DirCtrlToHost || uint64(len(r.data)) < g.Len() {
		return nvme.StatusDataSGLLengthInvalid.WithDNR()
	}
	if g.LPO%4 != 0 || g.LPO > uint64(len(full)) {
		return nvme.StatusInvalidField.WithDNR()
	}
	clear(r.data)
	copy(r.data[:g.Len()], full[g.LPO:])
	return nvme.StatusSuccess
}

func (ctrlr *Ctrlr) getLogPage(r *request) nvme.Status {
	g := nvme.DecodeGetLogPage(&r.sqe)
	if ctrlr.subsys.discovery {
		if g.LID != nvme.LogDiscovery {
			return nvme.StatusInvalidLogPage.WithDNR()
		}
		return logPage(r, ctrlr.t.discoveryLog(ctrlr.hostNQN), g)
	}
	switch g.LID {
	case nvme.LogError:
		return logPage(r, ctrlr.errorLog(), g)
	case nvme.LogSMART:
		nsid := r.sqe.NSID()
		if nsid != 0 && nsid != 0xFFFFFFFF {
			// LPA bit 0 is clear: health is kept per controller, not per namespace.
			return nvme.StatusInvalidField.WithDNR()
		}
		var b [nvme.SMARTLogLen]byte
		l := ctrlr.healthLog()
		l.MarshalTo(&b)
		return logPage(r, b[:], g)
	case nvme.LogFirmwareSlot:
		var b [nvme.FirmwareSlotLogLen]byte
		l := nvme.FirmwareSlotLog{AFI: 1}
		copy(l.FRS[0][:], padded(ctrlr.t.firmware, 8))
		l.MarshalTo(&b)
		return logPage(r, b[:], g)
	case nvme.LogChangedNSList:
		var b [nvme.IdentifyLen]byte
		var l nvme.NSList
		if ctrlr.nsOver {
			l.IDs[0], l.N = nvme.ChangedNSListOverflow, 1
		} else {
			l.N = copy(l.IDs[:], ctrlr.changedNS)
		}
		l.MarshalTo(&b)
		st := logPage(r, b[:], g)
		if st.Success() && !g.RAE {
			ctrlr.changedNS, ctrlr.nsOver, ctrlr.nsMasked = ctrlr.changedNS[:0], false, false
		}
		return st
	case nvme.LogReservationNotification:
		b := ctrlr.resvLogPage(g.RAE)
		return logPage(r, b[:], g)
	case nvme.LogCommandEffects:
		var b [nvme.CommandEffectsLogLen]byte
		l := commandEffects(ctrlr.t.resv != nil)
		l.MarshalTo(&b)
		return logPage(r, b[:], g)
	}
	return nvme.StatusInvalidLogPage.WithDNR()
}

func padded(s string, n int) []byte {
	b := make([]byte, n)
	nvme.PutASCII(b, s)
	return b
}

// errorLog lists the newest entries first.
func (ctrlr *Ctrlr) errorLog() []byte {
	b := make([]byte, errLogLen*nvme.ErrorLogEntryLen)
	for i := 0; i < errLogLen; i++ {
		e := &ctrlr.errLog[(ctrlr.errNext-1-i+2*errLogLen)%errLogLen]
		if e.ErrorCount == 0 {
			break
		}
		e.MarshalTo((*[nvme.ErrorLogEntryLen]byte)(b[i*nvme.ErrorLogEntryLen:]))
	}
	return b
}

// healthLog reports real counters of the I/O the subsystem has done since the daemon
// started; power cycles, unsafe shutdowns and power-on hours are kept across restarts.
// There is no temperature sensor: the composite temperature stays 0 and so do the
// sensor fields, whose 0 means "not implemented" (Base: a temperature sensor field that
// reports 0h is not implemented), with WCTEMP and CCTEMP 0 in Identify (no thresholds).
// No spare capacity is consumed and no media wears: Available Spare 100%, Percentage
// Used 0, which are those facts, not placeholders.
func (ctrlr *Ctrlr) healthLog() nvme.SMARTLog {
	ur, uw, reads, writes, media, busySecs := ctrlr.subsys.healthTotals()
	t := ctrlr.t
	return nvme.SMARTLog{
		AvailableSpare:    100,
		DataUnitsRead:     nvme.DataUnits(ur * 512),
		DataUnitsWritten:  nvme.DataUnits(uw * 512),
		HostReadCommands:  nvme.Uint128{Lo: reads},
		HostWriteCommands: nvme.Uint128{Lo: writes},
		// Minutes with at least one I/O command outstanding, a started minute counted.
		ControllerBusyTime: nvme.Uint128{Lo: (busySecs + 59) / 60},
		PowerCycles:        nvme.Uint128{Lo: t.powerCycles},
		PowerOnHours:       nvme.Uint128{Lo: t.powerOnHours()},
		UnsafeShutdowns:    nvme.Uint128{Lo: t.unsafeShutdowns},
		MediaErrors:        nvme.Uint128{Lo: media},
		ErrorLogEntries:    nvme.Uint128{Lo: ctrlr.errCount},
	}
}

func commandEffects(resv bool) nvme.CommandEffectsLog {
	var l nvme.CommandEffectsLog
	if resv {
		l.IOCS[nvme.NVMReservationReport] = nvme.EffectCSUPP
		for _, op := range []nvme.NVMOpcode{nvme.NVMReservationRegister, nvme.NVMReservationAcquire,
			nvme.NVMReservationRelease} {
			l.IOCS[op] = nvme.EffectCSUPP
		}
	}
	for _, op := range []nvme.AdminOpcode{nvme.AdminGetLogPage, nvme.AdminIdentify, nvme.AdminAbort,
		nvme.AdminSetFeatures, nvme.AdminGetFeatures, nvme.AdminAsyncEventRequest, nvme.AdminKeepAlive} {
		l.ACS[op] = nvme.EffectCSUPP
	}
	for _, op := range []nvme.NVMOpcode{nvme.NVMFlush, nvme.NVMRead} {
		l.IOCS[op] = nvme.EffectCSUPP
	}
	for _, op := range []nvme.NVMOpcode{nvme.NVMWrite, nvme.NVMWriteZeroes, nvme.NVMDatasetManagement} {
		l.IOCS[op] = nvme.EffectCSUPP | nvme.EffectLBCC
	}
	return l
}

func (ctrlr *Ctrlr) setFeatures(r *request) nvme.Status {
	fid := r.sqe.FeatureID()
	v := r.sqe.CDW11()
	if fid == nvme.FeatReservationPersistence {
		// Saveable by nature: the setting lives with the reservation state, which
		// the group (or the standalone node's store) keeps.
		return ctrlr.setResvPersistence(r, v)
	}
	if r.sqe.CDW10()&nvme.FeatureSaveBit != 0 {
		return nvme.StatusFeatureIdentifierNotSaveable.WithDNR()
	}
	f := &ctrlr.feat
	switch fid {
	case nvme.FeatArbitration:
		f.arbitration = v
	case nvme.FeatPowerManagement:
		if nvme.DecodePowerManagement(v).PS != 0 {
			return nvme.StatusInvalidField.WithDNR()
		}
		f.powerMgmt = v
	case nvme.FeatTemperatureThreshold:
		f.tempThreshold = v
	case nvme.FeatErrorRecovery:
		if nvme.DecodeErrorRecovery(v).DULBE {
			return nvme.StatusInvalidField.WithDNR()
		}
		f.errRecovery = v
	case nvme.FeatVolatileWriteCache:
		ctrlr.wceOff.Store(v&nvme.VWCEnable == 0)
	case nvme.FeatNumberOfQueues:
		if ctrlr.ioqSet {
			if ctrlr.hasIOQueues() {
				// Only before any I/O queue exists (Base §5.27.1.7).
				return nvme.StatusCommandSequenceError.WithDNR()
			}
			// Asked again before any queue: the grant stands (SPDK and nvmet answer
			// so rather than fail).
			n := ctrlr.numIOQ
			r.cqe.SetDW0(nvme.NumberOfQueues(n-1, n-1))
			return nvme.StatusSuccess
		}
		nsq, ncq := nvme.DecodeNumberOfQueues(v)
		if nsq == 0xFFFF || ncq == 0xFFFF {
			return nvme.StatusInvalidField.WithDNR()
		}
		n := min(max(nsq, ncq)+1, ctrlr.t.opts.MaxIOQPairsPerCtrlr)
		ctrlr.numIOQ, ctrlr.ioqSet = n, true
		r.cqe.SetDW0(nvme.NumberOfQueues(n-1, n-1))
	case nvme.FeatInterruptCoalescing:
		f.irqCoalescing = v
	case nvme.FeatWriteAtomicityNormal:
		f.writeAtomic = v
	case nvme.FeatAsyncEventConfig:
		supported := nvme.AECNSAttribute
		if ctrlr.subsys.discovery {
			supported = nvme.AECDiscoveryLogChange
		}
		if v&^(supported|nvme.AECSMARTMask) != 0 {
			return nvme.StatusInvalidField.WithDNR()
		}
		f.asyncEvents = v
	case nvme.FeatKeepAliveTimer:
		ctrlr.katoMs = roundKATO(v)
	case nvme.FeatHostIdentifier:
		// On fabrics the host ID comes from Connect (nvmet does the same).
		return nvme.StatusCommandSequenceError.WithDNR()
	case nvme.FeatReservationNotificationMask:
		return ctrlr.setResvMask(r.sqe.NSID(), v)
	default:
		return nvme.StatusInvalidField.WithDNR()
	}
	return nvme.StatusSuccess
}

// roundKATO rounds a keep-alive timeout up to the KAS granularity.
func roundKATO(ms uint32) uint32 {
	if ms == 0 {
		return 0
	}
	return (ms + kasUnitMs - 1) / kasUnitMs * kasUnitMs
}

func (ctrlr *Ctrlr) getFeatures(r *request) nvme.Status {
	fid := r.sqe.FeatureID()
	sel := r.sqe.FeatureSEL()
	if sel == 3 {
		caps, ok := ctrlr.featureCapabilities(fid)
		if !ok {
			return nvme.StatusInvalidField.WithDNR()
		}
		r.cqe.SetDW0(caps)
		return nvme.StatusSuccess
	}
	current := sel == 0
	f := &ctrlr.feat
	var v uint32
	switch fid {
	case nvme.FeatArbitration:
		v = pick(current, f.arbitration)
	case nvme.FeatPowerManagement:
		v = pick(current, f.powerMgmt)
	case nvme.FeatTemperatureThreshold:
		v = pick(current, f.tempThreshold)
	case nvme.FeatErrorRecovery:
		v = pick(current, f.errRecovery)
	case nvme.FeatVolatileWriteCache:
		v = nvme.VWCEnable
		if current && ctrlr.wceOff.Load() {
			v = 0
		}
	case nvme.FeatNumberOfQueues:
		n := ctrlr.numIOQ
		if !current {
			n = ctrlr.t.opts.MaxIOQPairsPerCtrlr
		}
		v = nvme.NumberOfQueues(n-1, n-1)
	case nvme.FeatInterruptCoalescing:
		v = pick(current, f.irqCoalescing)
	case nvme.FeatWriteAtomicityNormal:
		v = pick(current, f.writeAtomic)
	case nvme.FeatAsyncEventConfig:
		v = pick(current, f.asyncEvents)
	case nvme.FeatKeepAliveTimer:
		v = pick(current, ctrlr.katoMs)
	case nvme.FeatReservationNotificationMask:
		if _, st := ctrlr.resvNamespace(r.sqe.NSID(), true); !st.Success() {
			return st
		}
		v = pick(current, ctrlr.resvLog.mask(r.sqe.NSID()))
	case nvme.FeatReservationPersistence:
		ns, st := ctrlr.resvNamespace(r.sqe.NSID(), false)
		if !st.Success() {
			return st
		}
		// The current and saved values are one: the setting is kept with the state.
		v = nvme.ResvPersistence(sel != 1 && ns.vol.State().PTPL)
	case nvme.FeatHostIdentifier:
		if r.sqe.CDW11()&nvme.HostIDEXHID == 0 {
			// Fabrics host IDs are 128 bits; only the extended form is valid.
			return nvme.StatusInvalidField.WithDNR()
		}
		if r.dir != nvme.DirCtrlToHost || len(r.data) < 16 {
			return nvme.StatusDataSGLLengthInvalid.WithDNR()
		}
		clear(r.data)
		copy(r.data, ctrlr.hostID[:])
	default:
		return nvme.StatusInvalidField.WithDNR()
	}
	r.cqe.SetDW0(v)
	return nvme.StatusSuccess
}

func (ctrlr *Ctrlr) hasIOQueues() bool {
	for _, q := range ctrlr.ioqs {
		if q != nil {
			return true
		}
	}
	return false
}

// Get Features SEL 011b capability bits (Base: bit 0 saveable, bit 1 namespace
// specific, bit 2 changeable).
const (
	featSaveable   = 1 << 0
	featNSSpecific = 1 << 1
	featChangeable = 1 << 2
)

// featureCapabilities answers SEL 011b for the features this controller serves, and
// only for those: none is saveable (Set Features refuses SV) or namespace specific.
func (ctrlr *Ctrlr) featureCapabilities(fid nvme.FeatureID) (uint32, bool) {
	if ctrlr.subsys.discovery {
		switch fid {
		case nvme.FeatKeepAliveTimer, nvme.FeatAsyncEventConfig:
			return featChangeable, true
		}
		return 0, false
	}
	switch fid {
	case nvme.FeatArbitration, nvme.FeatPowerManagement, nvme.FeatTemperatureThreshold,
		nvme.FeatErrorRecovery, nvme.FeatVolatileWriteCache, nvme.FeatNumberOfQueues,
		nvme.FeatInterruptCoalescing, nvme.FeatWriteAtomicityNormal, nvme.FeatAsyncEventConfig,
		nvme.FeatKeepAliveTimer:
		return featChangeable, true
	case nvme.FeatHostIdentifier:
		// Set by Connect on fabrics; Set Features refuses it.
		return 0, true
	case nvme.FeatReservationNotificationMask:
		if ctrlr.t.resv != nil {
			return featChangeable | featNSSpecific, true
		}
	case nvme.FeatReservationPersistence:
		if ctrlr.t.resv != nil {
			return featChangeable | featNSSpecific | featSaveable, true
		}
	}
	return 0, false
}

// resvNamespace finds the namespace a reservation feature names. allowAll admits
// NSID FFFFFFFFh (feature 82h's "every namespace").
func (ctrlr *Ctrlr) resvNamespace(nsid uint32, allowAll bool) (*Namespace, nvme.Status) {
	if ctrlr.t.resv == nil {
		return nil, nvme.StatusInvalidField.WithDNR()
	}
	if nsid == 0xFFFFFFFF && allowAll {
		return nil, nvme.StatusSuccess
	}
	ns := ctrlr.subsys.namespaces().get(nsid)
	if ns == nil || ns.vol == nil {
		return nil, nvme.StatusInvalidNamespaceOrFormat.WithDNR()
	}
	return ns, nvme.StatusSuccess
}

// setResvMask is Set Features 82h: which notices this controller logs, per namespace
// or, with NSID FFFFFFFFh, for every namespace.
func (ctrlr *Ctrlr) setResvMask(nsid, v uint32) nvme.Status {
	if _, st := ctrlr.resvNamespace(nsid, true); !st.Success() {
		return st
	}
	if _, ok := nvme.DecodeResvNotifMask(v); !ok {
		return nvme.StatusInvalidField.WithDNR()
	}
	if nsid == 0xFFFFFFFF {
		clear(ctrlr.resvLog.masks)
	}
	ctrlr.resvLog.masks[nsid] = v
	return nvme.StatusSuccess
}

// setResvPersistence is Set Features 83h: a reservation command like any other, decided
// by the group (it asks to persist when PTPL is 1), answered later on this reactor.
func (ctrlr *Ctrlr) setResvPersistence(r *request, v uint32) nvme.Status {
	ns, st := ctrlr.resvNamespace(r.sqe.NSID(), false)
	if !st.Success() {
		return st
	}
	cmd := reservation.NVMeSetPTPLCommand(ctrlr.resvID, v)
	r.c.submitResv(r, ns.vol, cmd)
	return statusPending
}

func pick(current bool, v uint32) uint32 {
	if current {
		return v
	}
	return 0
}
