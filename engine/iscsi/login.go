package iscsi

import (
	"net/netip"
	"strings"

	proto "sluice/engine/proto/iscsi"
)

// discoveryDepth is the command window of a discovery session: it only ever has a
// Text Request and a Logout in flight.
const discoveryDepth = 4

// loginHooks answers the login state machine's questions for one connection.
type loginHooks struct{ c *conn }

// Authorize finds the target node and checks that the initiator may reach it through
// this portal group, then says how it must authenticate.
func (h loginHooks) Authorize(id proto.LoginIdentity) (proto.LoginPolicy, proto.Status) {
	c := h.c
	t := c.pg.t
	if t.stopping.Load() {
		return proto.LoginPolicy{}, proto.StatusServiceUnavailable
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var auth DiscoveryAuth
	var alias string
	var n *TargetNode
	depth := discoveryDepth
	if id.SessionType == proto.SessionDiscovery {
		auth = t.discovery
	} else {
		n = t.nodes[nodeKey(id.TargetName)]
		if n == nil {
			return proto.LoginPolicy{}, proto.StatusNotFound
		}
		if !t.admits(n, c.tpgt, id.InitiatorName, c.peer) {
			return proto.LoginPolicy{}, proto.StatusAuthorizationFailure
		}
		auth, alias, depth = n.Auth, n.Alias, n.QueueDepth
	}
	cfg := t.opts.protoConfig(alias, c.tpgt)
	if n != nil && n.HeaderDigest {
		cfg.HeaderDigest = proto.DigestCRC32C
	}
	if n != nil && n.DataDigest {
		cfg.DataDigest = proto.DigestCRC32C
	}
	policy := proto.LoginPolicy{Config: cfg, Auth: proto.AuthNone}
	var g *AuthGroup
	if auth.CHAPGroup != 0 {
		g = t.auths[auth.CHAPGroup]
	}
	switch {
	case auth.RequireCHAP && g == nil:
		// CHAP required but no secrets to check it with: nobody can log in.
		t.log.Warn("iscsi: CHAP required without an auth group", "target", id.TargetName)
		return proto.LoginPolicy{}, proto.StatusAuthenticationFailure
	case auth.RequireCHAP:
		policy.Auth = proto.AuthCHAP
	case !auth.DisableCHAP && g != nil:
		policy.Auth = proto.AuthNone | proto.AuthCHAP
	}
	if g != nil && policy.Auth&proto.AuthCHAP != 0 {
		secrets := append([]CHAPSecret(nil), g.Secrets...)
		policy.CHAPSecret = func(user string) ([]byte, bool) {
			for _, s := range secrets {
				if s.User == user {
					return []byte(s.Secret), true
				}
			}
			return nil, false
		}
		policy.CHAP = proto.CHAPPolicy{MutualRequired: auth.MutualCHAP,
			TargetCredentials: func(user string) (string, []byte) {
				for _, s := range secrets {
					if s.User == user && s.MSecret != "" {
						return s.MUser, []byte(s.MSecret)
					}
				}
				return "", nil
			}}
	}
	c.cfg, c.node, c.loginDepth = cfg, n, uint32(depth)
	return policy, proto.StatusSuccess
}

// nodeKey is how target names are looked up: iSCSI names compare case-insensitively.
func nodeKey(name string) string { return strings.ToLower(name) }

// admits reports whether a pg/ig map of the node lets initiator in through portal
// group tpgt from peer.
//
// Preconditions: t.mu held.
func (t *Target) admits(n *TargetNode, tpgt uint16, initiator string, peer netip.AddrPort) bool {
	for _, m := range n.Maps {
		if m.PGTag != tpgt {
			continue
		}
		if ig := t.igroups[m.IGTag]; ig != nil && ig.allows(initiator, peer.Addr()) {
			return true
		}
	}
	return false
}

// JoinSession checks a login that adds (or reinstates) a connection of a session.
func (h loginHooks) JoinSession(id proto.LoginIdentity) (proto.Params, proto.Status) {
	c := h.c
	t := c.pg.t
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sessions[id.TSIH]
	if s == nil || s.id.ISID != id.ISID || !strings.EqualFold(s.id.InitiatorName, id.InitiatorName) ||
		!strings.EqualFold(s.id.TargetName, id.TargetName) || s.tpgt != c.tpgt || s.closingPub {
		return proto.Params{}, proto.StatusSessionDoesNotExist
	}
	reinstating := false
	for _, cid := range s.cids {
		if cid == id.CID {
			reinstating = true
		}
	}
	if !reinstating && uint32(len(s.cids)) >= s.p.MaxConnections {
		return proto.Params{}, proto.StatusTooManyConnections
	}
	return s.p, proto.StatusSuccess
}

// Establish creates the session of a leading login, reinstating (closing) an older
// session of the same initiator port and target (RFC 7143 §6.3.5), or admits an added
// connection to its session.
func (h loginHooks) Establish(id proto.LoginIdentity, p proto.Params) (uint16, proto.Status) {
	c := h.c
	t := c.pg.t
	t.mu.Lock()
	if id.TSIH != 0 {
		s := t.sessions[id.TSIH]
		if s == nil || s.closingPub {
			t.mu.Unlock()
			return 0, proto.StatusSessionDoesNotExist
		}
		s.cids = append(s.cids, id.CID)
		s.pendingJoins.Add(1)
		c.joining = s
		t.mu.Unlock()
		return s.tsih, proto.StatusSuccess
	}
	if len(t.sessions) >= int(t.opts.MaxSessions) {
		t.mu.Unlock()
		return 0, proto.StatusOutOfResources
	}
	var victims []*session
	for _, o := range t.sessions {
		if o.id.ISID == id.ISID && strings.EqualFold(o.id.InitiatorName, id.InitiatorName) &&
			strings.EqualFold(o.id.TargetName, id.TargetName) && o.tpgt == c.tpgt && !o.closingPub {
			o.closingPub = true
			victims = append(victims, o)
		}
	}
	tsih := t.nextTSIH
	for t.sessions[tsih] != nil || tsih == 0 {
		tsih++
	}
	t.nextTSIH = tsih + 1
	s := &session{t: t, home: c.pg, node: c.node, id: id, tsih: tsih, tpgt: c.tpgt, p: p,
		depth: c.loginDepth, expCmdSN: c.loginExp, cids: []uint16{id.CID}, done: make(chan struct{})}
	if s.node != nil {
		// The session's view of the LUN map makes its nexuses on first use, after
		// the old nexuses below have ended.
		s.ss = s.node.luns.Session(s.identity())
	}
	s.publish()
	t.sessions[tsih] = s
	t.mu.Unlock()
	for _, o := range victims {
		// The old I_T nexus ends now, before the new session makes its own: the new
		// one must start with its power-on unit attention and must not be ended
		// later by the old session's teardown (SCSI-2 reservations end with the
		// old nexus, RFC 7143 §6.3.5). The old session's tasks finish on their own.
		if o.ss != nil {
			o.ss.Lost()
		}
	}
	for _, o := range victims {
		t.log.Info("iscsi: session reinstated", "initiator", id.InitiatorName, "isid", id.ISID.String(), "old_tsih", o.tsih)
		o.closeAll("session reinstated")
	}
	t.counters.sessions.Add(1)
	c.joining = s
	return tsih, proto.StatusSuccess
}

// handleLogin runs one Login Request through the login state machine and sends its
// response; the connection enters full feature phase after the final one.
func (c *conn) handleLogin(data []byte) {
	if c.bhs().Opcode() != proto.OpLoginRequest {
		// RFC 7143 §6.3: only Login Requests until the login completes.
		c.pg.t.counters.protocolErrors.Add(1)
		c.beginClose("non-login PDU during login")
		return
	}
	req, _ := proto.DecodeLoginRequest(c.bhs())
	if c.login.State() == proto.LoginStateStart {
		// The first response starts the connection's StatSN where the initiator
		// expects it; a new session's window starts at the login's CmdSN.
		c.statSN = req.ExpStatSN
		c.loginExp = req.CmdSN
	}
	reply := c.login.Step(&req, data)
	p := c.ctlq.get()
	out := p.dataBuf(len(reply.Data))
	if out == nil {
		c.beginClose("no memory for a login response")
		return
	}
	copy(out, reply.Data)
	h := reply.Header
	h.StatSN = c.nextStatSN()
	switch {
	case c.joining != nil:
		h.ExpCmdSN, h.MaxCmdSN = c.joining.expPub.Load(), c.joining.maxPub.Load()
	case c.loginDepth > 0:
		h.ExpCmdSN, h.MaxCmdSN = c.loginExp, c.loginExp+c.loginDepth-1
	default:
		h.ExpCmdSN, h.MaxCmdSN = c.loginExp, c.loginExp
	}
	h.Put((*proto.BHS)(p.hdr[:proto.BHSLen]))
	c.sendCtl(p, out)
	switch {
	case reply.Failed:
		c.pg.t.counters.loginFailures.Add(1)
		id := c.login.Identity()
		c.pg.t.log.Info("iscsi: login refused", "peer", c.peer.String(), "initiator", id.InitiatorName,
			"target", id.TargetName, "status", h.Status.String(), "err", reply.Err)
		c.closeAfterSend("login failed")
	case reply.Done:
		c.loginDone(reply.Params)
	}
}

// loginDone takes the negotiated parameters; the connection moves to its session's
// reactor if it is not there.
func (c *conn) loginDone(p proto.Params) {
	s := c.joining
	c.params = p
	c.cid = c.login.Identity().CID
	c.login = nil
	if s.home == c.pg {
		c.enterFullFeature(s)
		return
	}
	// Read nothing more here: the initiator's next PDUs belong on the session's
	// reactor. The move happens once the Login Response has gone.
	c.state = connMigrating
	c.sock.StopReading()
	c.pg.markDirty(c)
}

// migrate hands the connection to its session's reactor.
//
// Preconditions: on the current reactor; the send queue is empty.
func (c *conn) migrate() {
	s := c.joining
	from := c.pg
	c.moved = true
	from.forget(c)
	fd := c.sock.Detach()
	delete(from.conns, c)
	from.connCount.Add(-1)
	to := s.home
	err := to.r.Post(func() {
		c.moved = false
		c.pg = to
		c.reactor.Store(to.r)
		if err := c.sock.Register(to.r, fd, c); err != nil {
			c.sock.FD = fd
			c.sock.Close()
			s.pendingJoins.Add(-1)
			c.state = connClosed
			if c.slot != nil {
				c.slot.Release()
			}
			return
		}
		to.conns[c] = struct{}{}
		to.connCount.Add(1)
		c.enterFullFeature(s)
	})
	if err != nil {
		c.sock.FD = fd
		c.sock.Close()
		if c.slot != nil {
			c.slot.Release()
		}
		s.pendingJoins.Add(-1)
		c.state = connClosed
	}
}

// enterFullFeature attaches the connection to its session and sizes it for I/O.
//
// Preconditions: on the session's reactor.
func (c *conn) enterFullFeature(s *session) {
	c.joining = nil
	if c.state == connMigrating {
		s.pendingJoins.Add(-1)
	}
	if s.closing || s.ended {
		c.state = connFull
		c.sess = s
		c.beginClose("session ended during login")
		return
	}
	s.attach(c)
	s.openLUNs()
	depth := int(s.depth) + immediateSlots
	if s.node == nil {
		depth = discoveryDepth
	}
	c.initTasks(depth)
	c.sq.Grow(depth*entriesPerTask + ctlSlots*ctlEntries)
	c.rb.Grow(recvBufSize)
	c.lp = proto.LayoutParams{Receiver: proto.RoleTarget, HeaderDigest: c.params.HeaderDigest,
		DataDigest: c.params.DataDigest, MaxRecvDataSegmentLength: c.params.MaxRecvDataSegmentLength}
	c.textAsm = proto.NewAssembler(0)
	c.state = connFull
	c.lastRecv = c.pg.r.Now()
	if c.slot != nil {
		c.slot.Established()
	}
	c.sock.StartReading()
	c.pg.t.log.Info("iscsi: logged in", "peer", c.peer.String(), "initiator", s.id.InitiatorName,
		"isid", s.id.ISID.String(), "target", s.id.TargetName, "tsih", s.tsih, "cid", c.cid,
		"type", s.id.SessionType.String(), "header_digest", c.params.HeaderDigest,
		"data_digest", c.params.DataDigest, "max_recv_dsl", c.params.MaxRecvDataSegmentLength,
		"max_xmit_dsl", c.params.MaxXmitDataSegmentLength, "auth", authName(c.params.AuthMethod))
	// Bytes read with the final Login Request's may hold the first commands.
	c.consume()
}

func authName(a proto.AuthSet) string {
	if a == proto.AuthCHAP {
		return "CHAP"
	}
	return "None"
}
