package iscsi

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"sluice/engine/bdev"
	"sluice/engine/mem"
	proto "sluice/engine/proto/iscsi"
	pscsi "sluice/engine/proto/scsi"
	"sluice/engine/reactor"
	"sluice/engine/reservation/manager"
	"sluice/engine/rpc"
	"sluice/engine/scsi"
	"sluice/engine/tcpconn"
)

// Errors of the control plane: the RPC layer's sentinels, so that wrapped errors reach
// clients with the right JSON-RPC code.
var (
	ErrNotFound = rpc.ErrNotFound
	ErrExists   = rpc.ErrExists
	ErrInvalid  = rpc.ErrInvalid
	ErrBusy     = rpc.ErrBusy
)

// DefaultNodeBase prefixes a target node name given without one, as SPDK prefixes
// "iqn.2016-06.io.spdk:".
const DefaultNodeBase = "iqn.2026-11.dev.sluice:"

// Config wires a Target to the daemon.
type Config struct {
	Reactors *reactor.Group
	Bdevs    *bdev.Manager
	// Mem returns reactor i's allocator core; task data buffers come from it.
	Mem func(i int) *mem.Core
	// Reservations is the node's reservation manager, shared with the NVMe target so
	// that a volume exported over both has one reservation state; nil serves no
	// persistent reservations.
	Reservations *manager.Manager
	Options      Options
	Logger       *slog.Logger
	// Revision is the product revision INQUIRY reports (4 ASCII characters at most).
	Revision string
}

// Target is the iSCSI target. Its methods are the control plane, safe from any
// goroutine.
type Target struct {
	cfg    Config
	log    *slog.Logger
	pgs    []*pollGroup
	limits *tcpconn.LimitSet
	resv   *manager.Manager

	stopping atomic.Bool
	counters counters

	// listenMu serialises portal changes, which wait on reactor 0 (listeners); no
	// reactor takes it. mu guards the object model and the session table; reactors
	// take it briefly at login.
	listenMu  sync.Mutex
	mu        sync.Mutex
	opts      Options                    // +checklocks:mu
	portals   map[uint16]*PortalGroup    // +checklocks:mu
	igroups   map[uint16]*InitiatorGroup // +checklocks:mu
	nodes     map[string]*TargetNode     // +checklocks:mu; by nodeKey
	auths     map[int]*AuthGroup         // +checklocks:mu
	discovery DiscoveryAuth              // +checklocks:mu
	sessions  map[uint16]*session        // +checklocks:mu; by TSIH
	nextTSIH  uint16                     // +checklocks:mu
}

// PortalGroup is a set of addresses that listen under one portal group tag (TPGT).
type PortalGroup struct {
	Tag     uint16
	Portals []Portal
	ls      []*tcpconn.Listener
}

// Portal is one listening address.
type Portal struct {
	Host string `json:"host"`
	Port string `json:"port"`
}

// InitiatorGroup says which initiators, from which networks, a mapping admits.
// "ANY" admits every name or network; a name prefixed with "!" is denied.
type InitiatorGroup struct {
	Tag        uint16
	Initiators []string
	Netmasks   []string
	nets       []netip.Prefix
	anyNet     bool
}

// AuthGroup holds CHAP secrets: the initiator's user and secret, and for mutual CHAP
// the target's own.
type AuthGroup struct {
	Tag     int
	Secrets []CHAPSecret
}

// CHAPSecret is one CHAP user.
type CHAPSecret struct {
	User    string `json:"user"`
	Secret  string `json:"secret"`
	MUser   string `json:"muser,omitempty"`
	MSecret string `json:"msecret,omitempty"`
}

// DiscoveryAuth is the authentication of discovery sessions (iscsi_set_discovery_auth).
type DiscoveryAuth struct {
	DisableCHAP bool `json:"disable_chap"`
	RequireCHAP bool `json:"require_chap"`
	MutualCHAP  bool `json:"mutual_chap"`
	CHAPGroup   int  `json:"chap_group"`
}

// TargetNode is an iSCSI target: a name, its LUNs, and the portal/initiator group
// pairs through which it is reachable.
type TargetNode struct {
	Name       string
	Alias      string
	Maps       []PGIGMap
	QueueDepth int
	Auth       DiscoveryAuth // the same switches, for this node
	// HeaderDigest and DataDigest require CRC32C digests on this node's connections.
	HeaderDigest, DataDigest bool
	luns                     *scsi.LUNMap
	lunList                  []LUNInfo
}

// PGIGMap pairs a portal group with an initiator group.
type PGIGMap struct {
	PGTag uint16 `json:"pg_tag"`
	IGTag uint16 `json:"ig_tag"`
}

// LUNInfo names a LUN's bdev.
type LUNInfo struct {
	BdevName string `json:"bdev_name"`
	LUNID    uint64 `json:"lun_id"`
}

// NewTarget starts the target's poll groups on every reactor. It listens nowhere
// until a portal group is created.
func NewTarget(cfg Config) (*Target, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	opts, err := cfg.Options.normalize()
	if err != nil {
		return nil, err
	}
	ls, err := tcpconn.NewLimitSet(opts.Limits)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	t := &Target{cfg: cfg, log: cfg.Logger, limits: ls, resv: cfg.Reservations, opts: opts,
		portals: map[uint16]*PortalGroup{}, igroups: map[uint16]*InitiatorGroup{},
		nodes: map[string]*TargetNode{}, auths: map[int]*AuthGroup{}, sessions: map[uint16]*session{},
		nextTSIH: 1}
	for i, r := range cfg.Reactors.Reactors() {
		pg := newPollGroup(t, r, cfg.Mem(i))
		if err := r.Do(pg.start); err != nil {
			return nil, err
		}
		t.pgs = append(t.pgs, pg)
	}
	return t, nil
}

// NodeName completes a short node name with DefaultNodeBase.
func NodeName(name string) string {
	if strings.HasPrefix(name, "iqn.") || strings.HasPrefix(name, "eui.") || strings.HasPrefix(name, "naa.") {
		return name
	}
	return DefaultNodeBase + name
}

// CreatePortalGroup starts listening on the group's portals.
func (t *Target) CreatePortalGroup(tag uint16, portals []Portal) error {
	if tag == 0 || len(portals) == 0 {
		return fmt.Errorf("portal group needs a tag (1..65535) and at least one portal: %w", ErrInvalid)
	}
	addrs := make([]netip.AddrPort, len(portals))
	for i, p := range portals {
		if p.Port == "" {
			portals[i].Port, p.Port = "3260", "3260"
		}
		a, err := tcpconn.ParseAddrPort(strings.Trim(p.Host, "[]"), p.Port)
		if err != nil {
			return fmt.Errorf("portal %s:%s: %v: %w", p.Host, p.Port, err, ErrInvalid)
		}
		addrs[i] = a
	}
	t.listenMu.Lock()
	defer t.listenMu.Unlock()
	t.mu.Lock()
	_, dup := t.portals[tag]
	t.mu.Unlock()
	if dup {
		return fmt.Errorf("portal group %d: %w", tag, ErrExists)
	}
	pg := &PortalGroup{Tag: tag, Portals: portals}
	for _, a := range addrs {
		l, err := tcpconn.Listen(tcpconn.ListenerConfig{Addr: a, Reactors: t.reactors(), Adopt: t.adopt(tag),
			Limits: t.limits, Logger: t.log, Stopping: t.stopping.Load})
		if err != nil {
			for _, l := range pg.ls {
				l.Close()
			}
			return err
		}
		pg.ls = append(pg.ls, l)
		t.log.Info("iscsi: listening", "portal", tcpconn.HostPort(a), "tpgt", tag)
	}
	t.mu.Lock()
	t.portals[tag] = pg
	t.mu.Unlock()
	return nil
}

func (t *Target) reactors() []*reactor.Reactor {
	rs := make([]*reactor.Reactor, len(t.pgs))
	for i, pg := range t.pgs {
		rs[i] = pg.r
	}
	return rs
}

// DeletePortalGroup stops listening; sessions made through it stay.
func (t *Target) DeletePortalGroup(tag uint16) error {
	t.listenMu.Lock()
	defer t.listenMu.Unlock()
	t.mu.Lock()
	pg := t.portals[tag]
	if pg == nil {
		t.mu.Unlock()
		return fmt.Errorf("portal group %d: %w", tag, ErrNotFound)
	}
	for _, n := range t.nodes {
		for _, m := range n.Maps {
			if m.PGTag == tag {
				t.mu.Unlock()
				return fmt.Errorf("portal group %d is mapped by %s: %w", tag, n.Name, ErrBusy)
			}
		}
	}
	delete(t.portals, tag)
	t.mu.Unlock()
	for _, l := range pg.ls {
		l.Close()
	}
	return nil
}

// CreateInitiatorGroup adds an initiator group.
func (t *Target) CreateInitiatorGroup(tag uint16, initiators, netmasks []string) error {
	ig := &InitiatorGroup{Tag: tag, Initiators: initiators, Netmasks: netmasks}
	if tag == 0 || len(initiators) == 0 {
		return fmt.Errorf("initiator group needs a tag and at least one initiator: %w", ErrInvalid)
	}
	if len(netmasks) == 0 {
		ig.Netmasks = []string{"ANY"}
	}
	for _, n := range ig.Netmasks {
		if strings.EqualFold(n, "ANY") {
			ig.anyNet = true
			continue
		}
		p, err := netip.ParsePrefix(n)
		if err != nil {
			a, aerr := netip.ParseAddr(n)
			if aerr != nil {
				return fmt.Errorf("netmask %q: %w", n, ErrInvalid)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		ig.nets = append(ig.nets, p.Masked())
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.igroups[tag] != nil {
		return fmt.Errorf("initiator group %d: %w", tag, ErrExists)
	}
	t.igroups[tag] = ig
	return nil
}

// DeleteInitiatorGroup removes an unused initiator group.
func (t *Target) DeleteInitiatorGroup(tag uint16) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.igroups[tag] == nil {
		return fmt.Errorf("initiator group %d: %w", tag, ErrNotFound)
	}
	for _, n := range t.nodes {
		for _, m := range n.Maps {
			if m.IGTag == tag {
				return fmt.Errorf("initiator group %d is mapped by %s: %w", tag, n.Name, ErrBusy)
			}
		}
	}
	delete(t.igroups, tag)
	return nil
}

// allows reports whether the group admits initiator name from peer.
func (ig *InitiatorGroup) allows(name string, peer netip.Addr) bool {
	ok := false
	for _, i := range ig.Initiators {
		switch {
		case strings.HasPrefix(i, "!") && strings.EqualFold(i[1:], name):
			return false
		case strings.EqualFold(i, "ANY") || strings.EqualFold(i, name):
			ok = true
		}
	}
	if !ok {
		return false
	}
	if ig.anyNet {
		return true
	}
	for _, p := range ig.nets {
		if p.Contains(peer.Unmap()) {
			return true
		}
	}
	return false
}

// CreateAuthGroup adds CHAP secrets.
func (t *Target) CreateAuthGroup(tag int, secrets []CHAPSecret) error {
	if tag <= 0 {
		return fmt.Errorf("auth group tag %d: want a positive tag: %w", tag, ErrInvalid)
	}
	for _, s := range secrets {
		if err := proto.ValidateCHAPSecrets([]byte(s.Secret), []byte(s.MSecret)); s.User == "" || err != nil {
			return fmt.Errorf("chap user %q: %v: %w", s.User, err, ErrInvalid)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.auths[tag] != nil {
		return fmt.Errorf("auth group %d: %w", tag, ErrExists)
	}
	t.auths[tag] = &AuthGroup{Tag: tag, Secrets: secrets}
	return nil
}

// SetDiscoveryAuth sets how discovery sessions authenticate.
func (t *Target) SetDiscoveryAuth(a DiscoveryAuth) error {
	if err := a.check(); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if a.CHAPGroup != 0 && t.auths[a.CHAPGroup] == nil {
		return fmt.Errorf("auth group %d: %w", a.CHAPGroup, ErrNotFound)
	}
	t.discovery = a
	return nil
}

func (a DiscoveryAuth) check() error {
	if a.DisableCHAP && (a.RequireCHAP || a.MutualCHAP) {
		return fmt.Errorf("disable_chap with require_chap or mutual_chap: %w", ErrInvalid)
	}
	if a.MutualCHAP && !a.RequireCHAP {
		return fmt.Errorf("mutual_chap needs require_chap: %w", ErrInvalid)
	}
	return nil
}

// NodeParams are iscsi_create_target_node's parameters (SPDK's names).
type NodeParams struct {
	Name         string    `json:"name" rpc:"required"`
	AliasName    string    `json:"alias_name,omitempty"`
	LUNs         []LUNInfo `json:"luns" rpc:"required"`
	PGIGMaps     []PGIGMap `json:"pg_ig_maps" rpc:"required"`
	QueueDepth   int       `json:"queue_depth,omitempty"`
	DisableCHAP  bool      `json:"disable_chap,omitempty"`
	RequireCHAP  bool      `json:"require_chap,omitempty"`
	MutualCHAP   bool      `json:"mutual_chap,omitempty"`
	CHAPGroup    int       `json:"chap_group,omitempty"`
	HeaderDigest bool      `json:"header_digest,omitempty"`
	DataDigest   bool      `json:"data_digest,omitempty"`
}

// CreateTargetNode exports bdevs as the LUNs of a new target node.
func (t *Target) CreateTargetNode(p NodeParams) error {
	name := NodeName(p.Name)
	if !proto.ValidName(name) {
		return fmt.Errorf("target name %q is not an iSCSI name: %w", name, ErrInvalid)
	}
	auth := DiscoveryAuth{DisableCHAP: p.DisableCHAP, RequireCHAP: p.RequireCHAP, MutualCHAP: p.MutualCHAP, CHAPGroup: p.CHAPGroup}
	if err := auth.check(); err != nil {
		return err
	}
	if len(p.LUNs) == 0 || len(p.PGIGMaps) == 0 {
		return fmt.Errorf("target node %s needs LUNs and portal/initiator group maps: %w", name, ErrInvalid)
	}
	if p.QueueDepth == 0 {
		p.QueueDepth = defaultQueueDepth
	}
	if p.QueueDepth < 1 || p.QueueDepth > maxQueueDepth {
		return fmt.Errorf("queue_depth %d not in [1, %d]: %w", p.QueueDepth, maxQueueDepth, ErrInvalid)
	}
	if err := t.checkMaps(p.PGIGMaps, p.CHAPGroup); err != nil {
		return err
	}
	n := &TargetNode{Name: name, Alias: p.AliasName, Maps: p.PGIGMaps, QueueDepth: p.QueueDepth, Auth: auth,
		HeaderDigest: p.HeaderDigest, DataDigest: p.DataDigest, luns: scsi.NewLUNMap("", "", t.cfg.Revision)}
	for _, l := range p.LUNs {
		if err := t.addLUN(n, l); err != nil {
			n.close()
			return err
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nodes[nodeKey(name)] != nil {
		n.close()
		return fmt.Errorf("target node %s: %w", name, ErrExists)
	}
	t.nodes[nodeKey(name)] = n
	return nil
}

func (t *Target) checkMaps(maps []PGIGMap, chapGroup int) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range maps {
		if t.portals[m.PGTag] == nil {
			return fmt.Errorf("portal group %d: %w", m.PGTag, ErrNotFound)
		}
		if t.igroups[m.IGTag] == nil {
			return fmt.Errorf("initiator group %d: %w", m.IGTag, ErrNotFound)
		}
	}
	if chapGroup != 0 && t.auths[chapGroup] == nil {
		return fmt.Errorf("auth group %d: %w", chapGroup, ErrNotFound)
	}
	return nil
}

func (t *Target) addLUN(n *TargetNode, l LUNInfo) error {
	if l.LUNID > pscsi.MaxLUN {
		return fmt.Errorf("lun_id %d above %d: %w", l.LUNID, pscsi.MaxLUN, ErrInvalid)
	}
	b, err := t.cfg.Bdevs.Get(l.BdevName)
	if err != nil {
		return err
	}
	var ports []scsi.TargetPort
	for _, m := range n.Maps {
		ports = append(ports, scsi.TargetPort{RelativeID: m.PGTag, Name: fmt.Sprintf("%s,t,0x%04x", n.Name, m.PGTag)})
	}
	lu, err := scsi.NewLU(scsi.LUConfig{Bdev: b, LUN: uint16(l.LUNID), Manager: t.resv,
		Home: t.pgs[0].r, Owner: fmt.Sprintf("iscsi %s lun %d", n.Name, l.LUNID),
		Revision: t.cfg.Revision, TargetName: n.Name, Ports: ports})
	if err != nil {
		return err
	}
	if err := n.luns.Add(lu); err != nil {
		lu.Close()
		return err
	}
	n.lunList = append(n.lunList, l)
	return nil
}

func (n *TargetNode) close() {
	for _, lun := range n.luns.LUNs() {
		if lu := n.luns.Remove(lun); lu != nil {
			lu.Close()
		}
	}
}

// DeleteTargetNode ends the node's sessions and unexports its LUNs.
func (t *Target) DeleteTargetNode(name string) error {
	name = NodeName(name)
	t.mu.Lock()
	n := t.nodes[nodeKey(name)]
	if n == nil {
		t.mu.Unlock()
		return fmt.Errorf("target node %s: %w", name, ErrNotFound)
	}
	delete(t.nodes, nodeKey(name))
	var victims []*session
	for _, s := range t.sessions {
		if s.node == n {
			victims = append(victims, s)
		}
	}
	t.mu.Unlock()
	for _, s := range victims {
		s.closeAll("target node deleted")
	}
	t.waitSessionsGone(victims)
	n.close()
	return nil
}

// TargetNodeInfo is iscsi_get_target_nodes' view of a node.
type TargetNodeInfo struct {
	Name         string    `json:"name"`
	AliasName    string    `json:"alias_name,omitempty"`
	LUNs         []LUNInfo `json:"luns"`
	PGIGMaps     []PGIGMap `json:"pg_ig_maps"`
	QueueDepth   int       `json:"queue_depth"`
	DisableCHAP  bool      `json:"disable_chap"`
	RequireCHAP  bool      `json:"require_chap"`
	MutualCHAP   bool      `json:"mutual_chap"`
	CHAPGroup    int       `json:"chap_group"`
	HeaderDigest bool      `json:"header_digest"`
	DataDigest   bool      `json:"data_digest"`
}

// TargetNodes describes the nodes, sorted by name.
func (t *Target) TargetNodes() []TargetNodeInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := []TargetNodeInfo{}
	for _, n := range t.nodes {
		out = append(out, TargetNodeInfo{Name: n.Name, AliasName: n.Alias, LUNs: append([]LUNInfo{}, n.lunList...),
			PGIGMaps: n.Maps, QueueDepth: n.QueueDepth, DisableCHAP: n.Auth.DisableCHAP,
			RequireCHAP: n.Auth.RequireCHAP, MutualCHAP: n.Auth.MutualCHAP, CHAPGroup: n.Auth.CHAPGroup,
			HeaderDigest: n.HeaderDigest, DataDigest: n.DataDigest})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// options returns the target-wide options.
func (t *Target) options() Options {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.opts
}

// closeNodeSessions ends every session with node except keep (which ends itself).
func (t *Target) closeNodeSessions(n *TargetNode, keep *session, reason string) {
	t.mu.Lock()
	var victims []*session
	for _, s := range t.sessions {
		if s.node == n && s != keep {
			victims = append(victims, s)
		}
	}
	t.mu.Unlock()
	for _, s := range victims {
		s.closeAll(reason)
	}
}

// NodeAuthParams are iscsi_target_node_set_auth's parameters (SPDK's names).
type NodeAuthParams struct {
	Name        string `json:"name" rpc:"required"`
	DisableCHAP bool   `json:"disable_chap,omitempty"`
	RequireCHAP bool   `json:"require_chap,omitempty"`
	MutualCHAP  bool   `json:"mutual_chap,omitempty"`
	CHAPGroup   int    `json:"chap_group,omitempty"`
}

// SetNodeAuth changes how initiators authenticate to a node; sessions already logged
// in keep going, the next login follows the new rule.
func (t *Target) SetNodeAuth(p NodeAuthParams) error {
	a := DiscoveryAuth{DisableCHAP: p.DisableCHAP, RequireCHAP: p.RequireCHAP, MutualCHAP: p.MutualCHAP, CHAPGroup: p.CHAPGroup}
	if err := a.check(); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.nodes[nodeKey(NodeName(p.Name))]
	if n == nil {
		return fmt.Errorf("target node %s: %w", NodeName(p.Name), ErrNotFound)
	}
	if a.CHAPGroup != 0 && t.auths[a.CHAPGroup] == nil {
		return fmt.Errorf("auth group %d: %w", a.CHAPGroup, ErrNotFound)
	}
	n.Auth = a
	return nil
}
