package iscsi

import (
	"encoding/binary"
	"strings"
	"sync/atomic"

	proto "sluice/engine/proto/iscsi"
	pscsi "sluice/engine/proto/scsi"
	"sluice/engine/reservation"
	"sluice/engine/scsi"
)

// session is an iSCSI session: its connections, the CmdSN window they share and, for
// a normal session, its I_T nexus on each LU of the target node. It lives on the
// reactor of its leading connection (home); connections that join it move there.
type session struct {
	t     *Target
	home  *pollGroup
	node  *TargetNode // nil for a discovery session
	id    proto.LoginIdentity
	tsih  uint16
	tpgt  uint16
	p     proto.Params // session-wide values; per-connection ones live in conn.params
	depth uint32

	// On home only.
	conns       []*conn
	expCmdSN    uint32
	outstanding uint32 // non-immediate commands received and not yet answered
	// seen marks CmdSNs above expCmdSN already received (on another connection), so
	// that expCmdSN moves past them once the gap before them fills. Bit i is
	// expCmdSN+1+i.
	seen [maxQueueDepth / 64]uint64
	// For a normal session: its I_T nexus across the node's LUN map (made with the
	// session and never changed, so a reinstating login on another reactor may end
	// it), and the map's channels on home, through which its tasks execute.
	ss      *scsi.Session
	mc      *scsi.MapChannel
	closing bool
	// pendingJoins counts connections whose login has joined but that have not
	// arrived on home yet: the session must not end under them.
	pendingJoins atomic.Int32

	// Under Target.mu: the CIDs of the session's connections (logged in or joining),
	// for logins on other reactors, and whether the session is on its way out.
	cids       []uint16
	closingPub bool

	// Published for logins on other reactors, which need the window for their
	// responses, and for RPC listings.
	expPub, maxPub atomic.Uint32
	ended          bool
	done           chan struct{} // closed when the session has ended
}

// identity is the session's I_T nexus identity on relative port tpgt. Initiator names
// compare case-insensitively (RFC 3722's stringprep maps them to lower case), so the
// name is folded: the same initiator is the same registrant whatever case it used.
func (s *session) identity() reservation.Identity {
	var b [8]byte
	copy(b[2:], s.id.ISID[:])
	return reservation.SCSINexus(strings.ToLower(s.id.InitiatorName), binary.BigEndian.Uint64(b[:]), s.tpgt)
}

// maxCmdSN is the window's upper edge: the target takes as many commands as it has
// free slots, so a busy session's initiator waits instead of being refused.
func (s *session) maxCmdSN() uint32 {
	free := s.depth - min(s.outstanding, s.depth)
	return s.expCmdSN + free - 1
}

func (s *session) publish() {
	s.expPub.Store(s.expCmdSN)
	s.maxPub.Store(s.maxCmdSN())
}

// acceptCmdSN decides what to do with a command's CmdSN (RFC 7143 §3.2.2.1): an
// immediate command is delivered whatever its CmdSN; a non-immediate one outside
// [ExpCmdSN, MaxCmdSN], or one already received, is dropped without a word; one in the
// window is delivered and, when it is the next expected, moves ExpCmdSN on past any
// later ones received already on other connections.
//
// Tasks run as SIMPLE tasks (the LU's VPD says so), so one that arrives ahead of a gap
// on another connection is not held back for ordering.
func (s *session) acceptCmdSN(cmdSN uint32, immediate bool) bool {
	if immediate {
		return true
	}
	max := s.maxCmdSN()
	if !proto.CmdSNInWindow(cmdSN, s.expCmdSN, max) {
		return false
	}
	if cmdSN != s.expCmdSN {
		k := cmdSN - s.expCmdSN - 1
		if s.seen[k/64]&(1<<(k%64)) != 0 {
			return false
		}
		s.seen[k/64] |= 1 << (k % 64)
		s.outstanding++
		return true
	}
	s.expCmdSN++
	s.outstanding++
	for s.seen[0]&1 != 0 {
		s.shiftSeen()
		s.expCmdSN++
	}
	s.shiftSeen()
	s.publish()
	return true
}

// shiftSeen moves the bitmap down one CmdSN as expCmdSN advances.
func (s *session) shiftSeen() {
	for i := range s.seen {
		s.seen[i] >>= 1
		if i+1 < len(s.seen) {
			s.seen[i] |= s.seen[i+1] << 63
		}
	}
}

// answered frees a window slot once a non-immediate command's response is built.
func (s *session) answered() {
	if s.outstanding > 0 {
		s.outstanding--
	}
	s.publish()
}

// lookupLU finds the LU an 8-byte LUN field addresses, or nil.
func (s *session) lookupLU(l [8]byte) *scsi.LU {
	lun, err := pscsi.DecodeLUN(l)
	if err != nil || s.node == nil {
		return nil
	}
	return s.node.luns.Lookup(lun)
}

// openLUNs makes the session's I_T nexus on the node's LUs and its channels.
//
// Preconditions: on home.
func (s *session) openLUNs() {
	if s.node == nil || s.mc != nil {
		return
	}
	s.mc = s.node.luns.Channel(s.home.r, s.home.mem)
}

// closeLUNs ends the session's nexuses (SCSI-2 reservations they hold end with them)
// and releases its channels; tasks still in a bdev complete on their own.
//
// Preconditions: on home.
func (s *session) closeLUNs() {
	if s.ss != nil {
		s.ss.Lost()
	}
	if s.mc != nil {
		s.mc.Put()
		s.mc = nil
	}
}

// attach adds a connection that finished its login.
//
// Preconditions: on home.
func (s *session) attach(c *conn) {
	// Connection reinstatement (RFC 7143 §6.3.4): a login with the CID of a live
	// connection replaces it; at ErrorRecoveryLevel 0 the old one's tasks end with it.
	for _, old := range s.conns {
		if old.cid == c.cid && old != c {
			old.beginClose("connection reinstated")
		}
	}
	s.conns = append(s.conns, c)
	c.sess = s
}

// connGone is told by a closed connection. The session ends with its last connection
// (ErrorRecoveryLevel 0 keeps no session without connections: Time2Retain is moot).
//
// Preconditions: on home.
func (s *session) connGone(c *conn) {
	for i, x := range s.conns {
		if x == c {
			s.conns = append(s.conns[:i], s.conns[i+1:]...)
			break
		}
	}
	t := s.t
	t.mu.Lock()
	for i, cid := range s.cids {
		if cid == c.cid {
			s.cids = append(s.cids[:i], s.cids[i+1:]...)
			break
		}
	}
	t.mu.Unlock()
	if len(s.conns) > 0 || s.pendingJoins.Load() > 0 {
		return
	}
	s.end()
}

// end removes the session from the target once its last connection has closed.
//
// Preconditions: on home; no connection left.
func (s *session) end() {
	if s.ended {
		return
	}
	s.ended = true
	s.closeLUNs()
	t := s.t
	t.mu.Lock()
	s.closingPub = true
	if t.sessions[s.tsih] == s {
		delete(t.sessions, s.tsih)
	}
	t.mu.Unlock()
	close(s.done)
	t.log.Info("iscsi: session ended", "initiator", s.id.InitiatorName, "isid", s.id.ISID.String(),
		"target", s.id.TargetName, "tsih", s.tsih)
}

// closeAll ends every connection of the session. Safe from any goroutine.
func (s *session) closeAll(reason string) {
	s.t.mu.Lock()
	s.closingPub = true
	s.t.mu.Unlock()
	_ = s.home.r.Post(func() {
		s.closing = true
		for _, c := range append([]*conn(nil), s.conns...) {
			c.beginClose(reason)
		}
		if len(s.conns) == 0 && s.pendingJoins.Load() == 0 {
			s.end()
		}
	})
}

// waitSessionsGone waits until the sessions have ended.
func (t *Target) waitSessionsGone(ss []*session) {
	for _, s := range ss {
		<-s.done
	}
}
