package scsi

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"sluice/engine/mem"
	"sluice/engine/proto/scsi"
	"sluice/engine/reactor"
	"sluice/engine/reservation"
)

// LUNMap is the logical units of one SCSI target device (an iSCSI target node), by
// LUN. It answers what spans LUs: REPORT LUNS (through any LUN, LUN 0 included even
// when no LU is mapped there, SPC-4 §6.33), INQUIRY to a LUN with no LU (PQ 011b, PDT
// 1Fh) and LOGICAL UNIT NOT SUPPORTED for other commands to one. The map is an
// immutable table published through an atomic pointer: routing a task reads it without
// a lock; Add and Remove (control path) publish a new one.
type LUNMap struct {
	noLUN scsi.StandardInquiry // INQUIRY data for LUNs with no LU

	mu  sync.Mutex // serialises Add and Remove
	tab atomic.Pointer[lunTable]
}

// lunTable is one published version of the map.
type lunTable struct {
	version uint64
	lus     map[uint16]*LU
	luns    []uint16 // ascending
}

// NewLUNMap makes an empty map. vendor, product and revision identify the target in
// INQUIRY data for LUNs with no LU (empty: the defaults).
func NewLUNMap(vendor, product, revision string) *LUNMap {
	m := &LUNMap{noLUN: scsi.StandardInquiry{Version: scsi.VersionSPC4, HiSup: true,
		Vendor: orDefault(vendor, DefaultVendor), Product: orDefault(product, DefaultProduct),
		Revision: orDefault(revision, DefaultRevision)}.NoLUN()}
	m.tab.Store(&lunTable{lus: map[uint16]*LU{}})
	return m
}

func (m *LUNMap) table() *lunTable { return m.tab.Load() }

// Add maps lu at lu.LUN(). An LU belongs to one map at most (REPORT LUNS through it
// answers for that map). The other LUs' nexuses get REPORTED LUNS DATA HAS CHANGED.
func (m *LUNMap) Add(lu *LU) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.table()
	if old.lus[lu.lun] != nil {
		return fmt.Errorf("scsi lun %d already mapped: %w", lu.lun, ErrExists)
	}
	if !lu.lunMap.CompareAndSwap(nil, m) {
		return fmt.Errorf("scsi lun %d belongs to another map: %w", lu.lun, ErrExists)
	}
	m.publish(old, lu.lun, lu)
	return nil
}

// Remove unmaps the LU at lun and returns it (nil if none). The caller closes it once
// the transport's channels of it are released.
func (m *LUNMap) Remove(lun uint16) *LU {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.table()
	lu := old.lus[lun]
	if lu == nil {
		return nil
	}
	m.publish(old, lun, nil)
	lu.lunMap.Store(nil)
	return lu
}

// publish installs a copy of old with lun set to lu (nil: removed) and tells the other
// LUs' nexuses (SPC-4 §6.33: REPORTED LUNS DATA HAS CHANGED).
//
// Preconditions: m.mu held.
func (m *LUNMap) publish(old *lunTable, lun uint16, lu *LU) {
	tab := &lunTable{version: old.version + 1, lus: make(map[uint16]*LU, len(old.lus)+1)}
	for k, v := range old.lus {
		tab.lus[k] = v
	}
	if lu != nil {
		tab.lus[lun] = lu
	} else {
		delete(tab.lus, lun)
	}
	for k := range tab.lus {
		tab.luns = append(tab.luns, k)
	}
	slices.Sort(tab.luns)
	m.tab.Store(tab)
	for k, other := range tab.lus {
		if k != lun {
			other.raiseAll(scsi.ASCReportedLUNsDataChanged, nil)
		}
	}
}

// Lookup returns the LU at lun, or nil. Lock-free.
func (m *LUNMap) Lookup(lun uint16) *LU { return m.table().lus[lun] }

// LUNs returns the mapped LUNs, ascending.
func (m *LUNMap) LUNs() []uint16 { return slices.Clone(m.table().luns) }

// Info describes the mapped LUs, by ascending LUN.
func (m *LUNMap) Info() []LUInfo {
	tab := m.table()
	out := make([]LUInfo, 0, len(tab.luns))
	for _, l := range tab.luns {
		out = append(out, tab.lus[l].Info())
	}
	return out
}

// Prepare is the package's Prepare for a task addressed by t.LUN: with the LU's block
// size, or 512 bytes for a LUN with no LU (whose commands move no block data).
func (m *LUNMap) Prepare(t *Task) (scsi.Direction, uint64) {
	bs := uint32(512)
	if lun, err := scsi.DecodeLUN(t.LUN); err == nil {
		if lu := m.Lookup(lun); lu != nil {
			bs = lu.blockSize
		}
	}
	return Prepare(t.cdbBytes(), bs)
}

// Session is one I_T nexus (an iSCSI session on a target port) across a LUNMap: it
// makes and keeps the nexus's Nexus for each LU, so that the transport routes a task by
// LUN without knowing the LUs. Its table follows the map's versions; reading it is
// lock-free. Safe for concurrent use by the reactors of a session's connections.
type Session struct {
	m  *LUNMap
	id reservation.Identity

	mu   sync.Mutex // serialises rebuilds and Lost
	tab  atomic.Pointer[sessionTable]
	lost bool // +checklocks:mu
}

type sessionTable struct {
	version uint64
	nexus   map[uint16]*Nexus
}

// Session starts the I_T nexus id's view of the map.
func (m *LUNMap) Session(id reservation.Identity) *Session {
	s := &Session{m: m, id: id}
	s.tab.Store(&sessionTable{version: ^uint64(0)})
	return s
}

// Identity is the session's I_T nexus identity.
func (s *Session) Identity() reservation.Identity { return s.id }

// Nexus returns the session's nexus with the LU at lun, or nil when no LU is mapped
// there. The first call after a map change rebuilds the table (control path); the
// others are a map lookup.
func (s *Session) Nexus(lun uint16) *Nexus {
	mt := s.m.table()
	st := s.tab.Load()
	if st.version != mt.version {
		st = s.rebuild(mt)
	}
	return st.nexus[lun]
}

// rebuild makes the table for map version mt, keeping the nexuses of LUs still mapped.
func (s *Session) rebuild(mt *lunTable) *sessionTable {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.tab.Load()
	if old.version == mt.version {
		return old
	}
	st := &sessionTable{version: mt.version, nexus: make(map[uint16]*Nexus, len(mt.lus))}
	for lun, lu := range mt.lus {
		if nx := old.nexus[lun]; nx != nil && nx.lu == lu {
			st.nexus[lun] = nx
		} else {
			st.nexus[lun] = lu.Nexus(s.id)
		}
	}
	s.tab.Store(st)
	return st
}

// Lost ends the I_T nexus on every LU (Nexus.Lost). Idempotent.
func (s *Session) Lost() {
	s.mu.Lock()
	if s.lost {
		s.mu.Unlock()
		return
	}
	s.lost = true
	st := s.tab.Load()
	s.mu.Unlock()
	for _, nx := range st.nexus {
		nx.Lost()
	}
}

// MapChannel is a LUNMap's I/O state on one reactor: the channel of each LU, opened on
// first use and released when its LU leaves the map. Reactor-owned.
type MapChannel struct {
	m       *LUNMap
	r       *reactor.Reactor
	core    *mem.Core
	version uint64
	chans   map[*LU]*Channel
	resp    []byte
	sense   [scsi.SenseMaxLen]byte
}

// Channel opens the map's I/O state on reactor r, with data buffers from core.
//
// Preconditions: on r. Postconditions: the caller owes a Put.
func (m *LUNMap) Channel(r *reactor.Reactor, core *mem.Core) *MapChannel {
	return &MapChannel{m: m, r: r, core: core, chans: map[*LU]*Channel{}}
}

// Execute routes t by t.LUN: to its LU's channel with s's nexus, or, for a LUN with no
// LU, answers it here. Done runs exactly once, on this reactor.
//
// Preconditions: on the channel's reactor; t.Done is set; t is not executing.
func (mc *MapChannel) Execute(s *Session, t *Task) {
	tab := mc.m.table()
	var lu *LU
	lun, err := scsi.DecodeLUN(t.LUN)
	if err == nil {
		lu = tab.lus[lun]
	}
	if lu == nil {
		mc.noLU(t, tab)
		return
	}
	nx := s.Nexus(lun)
	if nx == nil || nx.lu != lu {
		nx = lu.Nexus(s.id) // the map changed between the two reads
	}
	ch := mc.channel(lu, tab)
	if ch == nil {
		mc.answerNoLU(t, scsi.ErrLUNotSupported)
		return
	}
	t.Nexus = nx
	ch.Execute(t)
}

// channel returns the LU's channel on this reactor, opening it on first use, and
// releases those of LUs the map no longer holds.
func (mc *MapChannel) channel(lu *LU, tab *lunTable) *Channel {
	if mc.version != tab.version {
		for l, ch := range mc.chans {
			if tab.lus[l.lun] != l {
				ch.Put()
				delete(mc.chans, l)
			}
		}
		mc.version = tab.version
	}
	if ch := mc.chans[lu]; ch != nil {
		return ch
	}
	ch, err := lu.Channel(mc.r, mc.core)
	if err != nil {
		return nil // a closed LU: as good as unmapped
	}
	mc.chans[lu] = ch
	return ch
}

// Abort is Channel.Abort for a task executed through the map. A task to a LUN with no
// LU completed inside Execute and is never in flight.
//
// Preconditions: on the channel's reactor.
func (mc *MapChannel) Abort(t *Task) bool {
	if ch := t.x.ch; ch != nil && t.x.inflight {
		return ch.Abort(t)
	}
	return false
}

// Put releases every LU channel (see Channel.Put).
//
// Preconditions: on the channel's reactor.
func (mc *MapChannel) Put() {
	for l, ch := range mc.chans {
		ch.Put()
		delete(mc.chans, l)
	}
}

// noLU answers a task for a LUN with no LU (SPC-4 §6.4.2, §6.33, §4.5.2): INQUIRY
// returns PQ 011b/PDT 1Fh data, REPORT LUNS the map, REQUEST SENSE reports LOGICAL UNIT
// NOT SUPPORTED as data; everything else is CHECK CONDITION LOGICAL UNIT NOT SUPPORTED.
// Sense is fixed format: there is no LU whose D_SENSE to follow.
func (mc *MapChannel) noLU(t *Task, tab *lunTable) {
	t.Status, t.SenseLen, t.Produced, t.Aborted = scsi.StatusGood, 0, 0, NotAborted
	t.x.ch = nil
	cdb := t.cdbBytes()
	if len(cdb) == 0 {
		mc.answerNoLU(t, scsi.ErrLUNotSupported)
		return
	}
	switch scsi.Opcode(cdb[0]) {
	case scsi.OpInquiry, scsi.OpReportLUNs, scsi.OpRequestSense:
	default:
		mc.answerNoLU(t, scsi.ErrLUNotSupported)
		return
	}
	c, err := scsi.DecodeCDB(cdb)
	if err != nil {
		mc.answerNoLU(t, err)
		return
	}
	var b []byte
	switch c.Opcode {
	case scsi.OpInquiry:
		if c.EVPD {
			mc.answerNoLU(t, scsi.ErrLUNotSupported)
			return
		}
		b = mc.m.noLUN.Append(mc.resp[:0])
		mc.resp = b[:0] // keep the grown buffer
	case scsi.OpReportLUNs:
		if b, err = appendReportLUNs(mc.resp[:0], &c, tab.luns); err != nil {
			mc.answerNoLU(t, err)
			return
		}
		mc.resp = b[:0]
	default:
		s := scsi.ErrLUNotSupported.Sense
		b = mc.sense[:s.Put(mc.sense[:], c.Desc)]
	}
	b = scsi.Truncate(b, c.AllocationLength)
	copy(t.Data, b)
	t.Produced = uint64(len(b))
	t.Done(t)
}

// answerNoLU completes a task that reached no LU with CHECK CONDITION and err's sense.
func (mc *MapChannel) answerNoLU(t *Task, err error) {
	se, ok := err.(*scsi.SenseError)
	if !ok {
		se = scsi.ErrInternalTargetFailure
	}
	t.Status, t.Produced, t.Aborted = scsi.StatusCheckCondition, 0, NotAborted
	t.SenseLen = uint8(se.Sense.PutFixed(t.Sense[:]))
	t.Done(t)
}
