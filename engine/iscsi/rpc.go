package iscsi

import (
	"context"
	"fmt"
	"sort"
	"time"

	"sluice/engine/rpc"
	"sluice/engine/tcpconn"
)

// PortalGroupParams are iscsi_create_portal_group's parameters.
type PortalGroupParams struct {
	Tag     uint16   `json:"tag" rpc:"required"`
	Portals []Portal `json:"portals" rpc:"required"`
}

// TagParams name a group by tag.
type TagParams struct {
	Tag uint16 `json:"tag" rpc:"required"`
}

// InitiatorGroupParams are iscsi_create_initiator_group's parameters.
type InitiatorGroupParams struct {
	Tag        uint16   `json:"tag" rpc:"required"`
	Initiators []string `json:"initiators" rpc:"required"`
	Netmasks   []string `json:"netmasks,omitempty"`
}

// AuthGroupParams are iscsi_create_auth_group's parameters.
type AuthGroupParams struct {
	Tag     int          `json:"tag" rpc:"required"`
	Secrets []CHAPSecret `json:"secrets,omitempty"`
}

// NameParams name a target node.
type NameParams struct {
	Name string `json:"name" rpc:"required"`
}

// PortalGroupInfo is iscsi_get_portal_groups' entry.
type PortalGroupInfo struct {
	Tag     uint16   `json:"tag"`
	Portals []Portal `json:"portals"`
}

// InitiatorGroupInfo is iscsi_get_initiator_groups' entry.
type InitiatorGroupInfo struct {
	Tag        uint16   `json:"tag"`
	Initiators []string `json:"initiators"`
	Netmasks   []string `json:"netmasks"`
}

// ConnectionInfo is iscsi_get_connections' entry.
type ConnectionInfo struct {
	ID           int    `json:"id"`
	CID          uint16 `json:"cid"`
	TSIH         uint16 `json:"tsih"`
	Initiator    string `json:"initiator_name"`
	ISID         string `json:"isid"`
	Target       string `json:"target_node_name"`
	Portal       string `json:"portal"`
	Peer         string `json:"initiator_addr"`
	Reactor      int    `json:"reactor"`
	State        string `json:"state"`
	HeaderDigest bool   `json:"header_digest"`
	DataDigest   bool   `json:"data_digest"`
	MaxRecvDSL   uint32 `json:"max_recv_data_segment_length"`
	MaxXmitDSL   uint32 `json:"max_xmit_data_segment_length"`
	Tasks        int    `json:"tasks_in_flight"`
}

// Stats are iscsi_get_stats' counters.
type Stats struct {
	Sessions           int    `json:"sessions"`
	Connections        int64  `json:"connections"`
	SessionsCreated    uint64 `json:"sessions_created"`
	LoginFailures      uint64 `json:"login_failures"`
	DataDigestErrors   uint64 `json:"data_digest_errors"`
	HeaderDigestErrors uint64 `json:"header_digest_errors"`
	ProtocolErrors     uint64 `json:"protocol_errors"`
	Rejects            uint64 `json:"rejects_sent"`
	NopTimeouts        uint64 `json:"nop_timeouts"`
	CmdSNDropped       uint64 `json:"cmdsn_out_of_window"`
	tcpconn.LimitStats
}

func (s connState) String() string {
	switch s {
	case connLogin:
		return "login"
	case connMigrating:
		return "migrating"
	case connFull:
		return "full_feature"
	case connLoggingOut:
		return "logging_out"
	case connDraining:
		return "closing"
	}
	return "closed"
}

// Connections lists the live connections, read on each reactor.
func (t *Target) Connections() []ConnectionInfo {
	out := []ConnectionInfo{}
	for _, pg := range t.pgs {
		_ = pg.r.Do(func() {
			for c := range pg.conns {
				in := ConnectionInfo{CID: c.cid, Peer: c.peer.String(), Portal: c.local.String(),
					Reactor: pg.r.ID(), State: c.state.String(), HeaderDigest: c.params.HeaderDigest,
					DataDigest: c.params.DataDigest, MaxRecvDSL: c.params.MaxRecvDataSegmentLength,
					MaxXmitDSL: c.params.MaxXmitDataSegmentLength, Tasks: c.liveTasks()}
				if s := c.sess; s != nil {
					in.TSIH, in.Initiator, in.ISID, in.Target = s.tsih, s.id.InitiatorName, s.id.ISID.String(), s.id.TargetName
				}
				out = append(out, in)
			}
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].TSIH != out[j].TSIH {
			return out[i].TSIH < out[j].TSIH
		}
		return out[i].CID < out[j].CID
	})
	for i := range out {
		out[i].ID = i
	}
	return out
}

// Stats returns the target's counters.
func (t *Target) Stats() Stats {
	t.mu.Lock()
	n := len(t.sessions)
	t.mu.Unlock()
	var conns int64
	for _, pg := range t.pgs {
		conns += pg.connCount.Load()
	}
	c := &t.counters
	return Stats{Sessions: n, Connections: conns, SessionsCreated: c.sessions.Load(),
		LoginFailures: c.loginFailures.Load(), DataDigestErrors: c.dataDigestErrors.Load(),
		HeaderDigestErrors: c.headerDigestErrors.Load(), ProtocolErrors: c.protocolErrors.Load(),
		Rejects: c.rejects.Load(), NopTimeouts: c.nopTimeouts.Load(), CmdSNDropped: c.cmdSNDropped.Load(),
		LimitStats: t.limits.Stats()}
}

// PortalGroups describes the portal groups by tag.
func (t *Target) PortalGroups() []PortalGroupInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := []PortalGroupInfo{}
	for _, pg := range t.portals {
		out = append(out, PortalGroupInfo{Tag: pg.Tag, Portals: pg.Portals})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tag < out[j].Tag })
	return out
}

// InitiatorGroups describes the initiator groups by tag.
func (t *Target) InitiatorGroups() []InitiatorGroupInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := []InitiatorGroupInfo{}
	for _, ig := range t.igroups {
		out = append(out, InitiatorGroupInfo{Tag: ig.Tag, Initiators: ig.Initiators, Netmasks: ig.Netmasks})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tag < out[j].Tag })
	return out
}

// SetOptions changes the target-wide options. Negotiation limits apply to logins from
// now on; sessions keep what they negotiated. Connection limits apply at once.
func (t *Target) SetOptions(o Options) (Options, error) {
	o, err := o.normalize()
	if err != nil {
		return Options{}, err
	}
	if err := t.limits.Set(o.Limits); err != nil {
		return Options{}, fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	t.mu.Lock()
	t.opts = o
	t.mu.Unlock()
	return o, nil
}

// Shutdown stops listening, ends every session (their tasks finish first) and waits
// for the connections to close, or for ctx.
func (t *Target) Shutdown(ctx context.Context) error {
	t.stopping.Store(true)
	t.listenMu.Lock()
	t.mu.Lock()
	var ls []*PortalGroup
	for tag, pg := range t.portals {
		delete(t.portals, tag)
		ls = append(ls, pg)
	}
	t.mu.Unlock()
	for _, pg := range ls {
		for _, l := range pg.ls {
			l.Close()
		}
	}
	t.listenMu.Unlock()
	for _, pg := range t.pgs {
		_ = pg.r.Do(func() {
			for c := range pg.conns {
				c.beginClose("shutdown")
			}
		})
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		open := int64(0)
		for _, pg := range t.pgs {
			open += pg.connCount.Load()
		}
		if open == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("iscsi shutdown: %d connections still open: %w", open, ctx.Err())
		case <-tick.C:
		}
	}
	t.mu.Lock()
	nodes := make([]*TargetNode, 0, len(t.nodes))
	for k, n := range t.nodes {
		delete(t.nodes, k)
		nodes = append(nodes, n)
	}
	t.mu.Unlock()
	for _, n := range nodes {
		n.close()
	}
	return nil
}

// RegisterRPC registers SPDK's iscsi_* methods and the "iscsi" config section.
func RegisterRPC(reg *rpc.Registry, t *Target) {
	rpc.Handle(reg, "iscsi_create_portal_group", func(_ context.Context, p PortalGroupParams) (bool, error) {
		return true, t.CreatePortalGroup(p.Tag, p.Portals)
	})
	rpc.Handle(reg, "iscsi_delete_portal_group", func(_ context.Context, p TagParams) (bool, error) {
		return true, t.DeletePortalGroup(p.Tag)
	})
	rpc.Handle(reg, "iscsi_get_portal_groups", func(context.Context, struct{}) ([]PortalGroupInfo, error) {
		return t.PortalGroups(), nil
	})
	rpc.Handle(reg, "iscsi_create_initiator_group", func(_ context.Context, p InitiatorGroupParams) (bool, error) {
		return true, t.CreateInitiatorGroup(p.Tag, p.Initiators, p.Netmasks)
	})
	rpc.Handle(reg, "iscsi_delete_initiator_group", func(_ context.Context, p TagParams) (bool, error) {
		return true, t.DeleteInitiatorGroup(p.Tag)
	})
	rpc.Handle(reg, "iscsi_get_initiator_groups", func(context.Context, struct{}) ([]InitiatorGroupInfo, error) {
		return t.InitiatorGroups(), nil
	})
	rpc.Handle(reg, "iscsi_create_auth_group", func(_ context.Context, p AuthGroupParams) (bool, error) {
		return true, t.CreateAuthGroup(p.Tag, p.Secrets)
	})
	rpc.Handle(reg, "iscsi_set_discovery_auth", func(_ context.Context, p DiscoveryAuth) (bool, error) {
		return true, t.SetDiscoveryAuth(p)
	})
	rpc.Handle(reg, "iscsi_create_target_node", func(_ context.Context, p NodeParams) (bool, error) {
		return true, t.CreateTargetNode(p)
	})
	rpc.Handle(reg, "iscsi_target_node_set_auth", func(_ context.Context, p NodeAuthParams) (bool, error) {
		return true, t.SetNodeAuth(p)
	})
	rpc.Handle(reg, "iscsi_delete_target_node", func(_ context.Context, p NameParams) (bool, error) {
		return true, t.DeleteTargetNode(p.Name)
	})
	rpc.Handle(reg, "iscsi_get_target_nodes", func(context.Context, struct{}) ([]TargetNodeInfo, error) {
		return t.TargetNodes(), nil
	})
	rpc.Handle(reg, "iscsi_get_connections", func(context.Context, struct{}) ([]ConnectionInfo, error) {
		return t.Connections(), nil
	})
	rpc.Handle(reg, "iscsi_get_stats", func(context.Context, struct{}) (Stats, error) {
		return t.Stats(), nil
	})
	rpc.Handle(reg, "iscsi_get_options", func(context.Context, struct{}) (Options, error) {
		return t.options(), nil
	})
	rpc.Handle(reg, "iscsi_set_options", func(_ context.Context, p Options) (Options, error) {
		return t.SetOptions(p)
	})
	reg.RegisterConfigSection("iscsi", 30, t.dumpConfig)
}

// dumpConfig lists the calls that rebuild the target: options, groups, then nodes.
func (t *Target) dumpConfig() ([]rpc.Call, error) {
	calls := []rpc.Call{}
	add := func(method string, params any) error {
		c, err := rpc.NewCall(method, params)
		if err == nil {
			calls = append(calls, c)
		}
		return err
	}
	if err := add("iscsi_set_options", t.options()); err != nil {
		return nil, err
	}
	t.mu.Lock()
	auths := make([]AuthGroupParams, 0, len(t.auths))
	for _, g := range t.auths {
		auths = append(auths, AuthGroupParams{Tag: g.Tag, Secrets: g.Secrets})
	}
	disc := t.discovery
	t.mu.Unlock()
	sort.Slice(auths, func(i, j int) bool { return auths[i].Tag < auths[j].Tag })
	for _, a := range auths {
		if err := add("iscsi_create_auth_group", a); err != nil {
			return nil, err
		}
	}
	if err := add("iscsi_set_discovery_auth", disc); err != nil {
		return nil, err
	}
	for _, pg := range t.PortalGroups() {
		if err := add("iscsi_create_portal_group", PortalGroupParams(pg)); err != nil {
			return nil, err
		}
	}
	for _, ig := range t.InitiatorGroups() {
		if err := add("iscsi_create_initiator_group", InitiatorGroupParams(ig)); err != nil {
			return nil, err
		}
	}
	for _, n := range t.TargetNodes() {
		if err := add("iscsi_create_target_node", NodeParams(n)); err != nil {
			return nil, err
		}
	}
	return calls, nil
}
