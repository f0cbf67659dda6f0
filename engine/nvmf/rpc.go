package nvmf

import (
	"context"
	"encoding/hex"
	"fmt"
	"sort"

	"sluice/engine/rpc"
	"sluice/engine/tcpconn"
)

// NQNParams name a subsystem.
type NQNParams struct {
	NQN string `json:"nqn" rpc:"required"`
}

// AddNSParams are nvmf_subsystem_add_ns's parameters.
type AddNSParams struct {
	NQN       string          `json:"nqn" rpc:"required"`
	Namespace NamespaceParams `json:"namespace" rpc:"required"`
}

// RemoveNSParams are nvmf_subsystem_remove_ns's parameters.
type RemoveNSParams struct {
	NQN  string `json:"nqn" rpc:"required"`
	NSID uint32 `json:"nsid" rpc:"required"`
}

// ListenerParams are nvmf_subsystem_{add,remove}_listener's parameters.
type ListenerParams struct {
	NQN           string        `json:"nqn" rpc:"required"`
	ListenAddress ListenAddress `json:"listen_address" rpc:"required"`
}

// HostParams are nvmf_subsystem_{add,remove}_host's parameters.
type HostParams struct {
	NQN  string `json:"nqn" rpc:"required"`
	Host string `json:"host" rpc:"required"`
}

// AllowAnyHostParams are nvmf_subsystem_allow_any_host's parameters.
type AllowAnyHostParams struct {
	NQN          string `json:"nqn" rpc:"required"`
	AllowAnyHost bool   `json:"allow_any_host"`
}

// CtrlrInfo describes a live controller.
type CtrlrInfo struct {
	CNTLID    uint16 `json:"cntlid"`
	HostNQN   string `json:"hostnqn"`
	HostID    string `json:"hostid"`
	IOQueues  int    `json:"num_io_qpairs"`
	KATOMs    uint32 `json:"kato_ms"`
	Reactor   int    `json:"reactor"`
	Discovery bool   `json:"discovery,omitempty"`
	// Anonymous: the host sent an empty host NQN (SPDK's initiator does unless told one).
	Anonymous bool `json:"anonymous,omitempty"`
}

// QPairInfo describes one connected queue pair.
type QPairInfo struct {
	CNTLID        uint16 `json:"cntlid"`
	QID           uint16 `json:"qid"`
	Reactor       int    `json:"reactor"`
	Peer          string `json:"peer_address"`
	Listener      string `json:"listen_address"`
	HeaderDigest  bool   `json:"header_digest"`
	DataDigest    bool   `json:"data_digest"`
	SQFlowDisable bool   `json:"sq_flow_control_disabled"`
	QueueSize     uint16 `json:"queue_size"`
}

// QPairs lists the connected queue pairs of a subsystem, reading each reactor's
// connections on that reactor.
func (t *Target) QPairs(nqn string) ([]QPairInfo, error) {
	s, err := t.mustSubsystem(nqn)
	if err != nil {
		return nil, err
	}
	out := []QPairInfo{}
	for _, pg := range t.pgs {
		pg := pg
		_ = pg.r.Do(func() {
			for c := range pg.conns {
				if c.qp.subsys != s || c.qp.ctrlr == nil || c.state != connStateRunning {
					continue
				}
				out = append(out, QPairInfo{CNTLID: c.qp.ctrlr.cntlid, QID: c.qp.qid, Reactor: pg.r.ID(),
					Peer: c.peer, Listener: c.listen.endpoint(), HeaderDigest: c.recvLayout.HDGST,
					DataDigest: c.recvLayout.DDGST, SQFlowDisable: c.qp.sqflowOff, QueueSize: c.qp.sqsize})
			}
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].CNTLID != out[j].CNTLID {
			return out[i].CNTLID < out[j].CNTLID
		}
		return out[i].QID < out[j].QID
	})
	return out, nil
}

// TransportInfo is nvmf_get_transports' entry.
type TransportInfo struct {
	TrType string `json:"trtype"`
	TransportOpts
}

// Controllers describes the live controllers of a subsystem.
func (t *Target) Controllers(nqn string) ([]CtrlrInfo, error) {
	s, err := t.mustSubsystem(nqn)
	if err != nil {
		return nil, err
	}
	out := []CtrlrInfo{}
	for _, c := range s.controllers() {
		c := c
		var in CtrlrInfo
		_ = c.pg.r.Do(func() {
			in = CtrlrInfo{CNTLID: c.cntlid, HostNQN: c.hostNQN, HostID: hex.EncodeToString(c.hostID[:]),
				KATOMs: c.katoMs, Reactor: c.pg.r.ID(), Discovery: s.discovery, Anonymous: c.hostNQN == ""}
			for _, q := range c.ioqs {
				if q != nil {
					in.IOQueues++
				}
			}
		})
		out = append(out, in)
	}
	return out, nil
}

// RegisterRPC registers the nvmf methods and the "nvmf" config section.
func RegisterRPC(reg *rpc.Registry, t *Target) {
	rpc.Handle(reg, "nvmf_create_subsystem", func(_ context.Context, p SubsystemParams) (bool, error) {
		return true, t.CreateSubsystem(p)
	})
	rpc.Handle(reg, "nvmf_delete_subsystem", func(_ context.Context, p NQNParams) (bool, error) {
		return true, t.DeleteSubsystem(p.NQN)
	})
	rpc.Handle(reg, "nvmf_subsystem_add_ns", func(_ context.Context, p AddNSParams) (uint32, error) {
		return t.AddNamespace(p.NQN, p.Namespace)
	})
	rpc.Handle(reg, "nvmf_subsystem_remove_ns", func(_ context.Context, p RemoveNSParams) (bool, error) {
		return true, t.RemoveNamespace(p.NQN, p.NSID)
	})
	rpc.Handle(reg, "nvmf_subsystem_add_listener", func(_ context.Context, p ListenerParams) (bool, error) {
		return true, t.AddListener(p.NQN, p.ListenAddress)
	})
	rpc.Handle(reg, "nvmf_subsystem_remove_listener", func(_ context.Context, p ListenerParams) (bool, error) {
		return true, t.RemoveListener(p.NQN, p.ListenAddress)
	})
	rpc.Handle(reg, "nvmf_subsystem_add_host", func(_ context.Context, p HostParams) (bool, error) {
		return true, t.AddHost(p.NQN, p.Host)
	})
	rpc.Handle(reg, "nvmf_subsystem_remove_host", func(_ context.Context, p HostParams) (bool, error) {
		return true, t.RemoveHost(p.NQN, p.Host)
	})
	rpc.Handle(reg, "nvmf_subsystem_allow_any_host", func(_ context.Context, p AllowAnyHostParams) (bool, error) {
		return true, t.SetAllowAnyHost(p.NQN, p.AllowAnyHost)
	})
	rpc.Handle(reg, "nvmf_get_subsystems", func(context.Context, struct{}) ([]SubsystemInfo, error) {
		return t.Subsystems(), nil
	})
	rpc.Handle(reg, "nvmf_subsystem_get_controllers", func(_ context.Context, p NQNParams) ([]CtrlrInfo, error) {
		return t.Controllers(p.NQN)
	})
	rpc.Handle(reg, "nvmf_subsystem_get_qpairs", func(_ context.Context, p NQNParams) ([]QPairInfo, error) {
		return t.QPairs(p.NQN)
	})
	rpc.Handle(reg, "nvmf_get_stats", func(context.Context, struct{}) (Stats, error) {
		return t.Stats(), nil
	})
	rpc.Handle(reg, "nvmf_get_transports", func(context.Context, struct{}) ([]TransportInfo, error) {
		return []TransportInfo{{TrType: "TCP", TransportOpts: t.Opts()}}, nil
	})
	rpc.Handle(reg, "nvmf_set_transport_limits", func(_ context.Context, p tcpconn.Limits) (tcpconn.Limits, error) {
		return t.SetLimits(p)
	})
	reg.RegisterConfigSection("nvmf", 20, t.dumpConfig)
}

// SetLimits replaces the connection limits; fields left zero take the defaults. They
// apply to new decisions at once, connections already open included.
func (t *Target) SetLimits(l tcpconn.Limits) (tcpconn.Limits, error) {
	if err := t.limits.Set(l); err != nil {
		return tcpconn.Limits{}, fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	return t.limits.Get(), nil
}

// dumpConfig lists the calls that rebuild the subsystems: create, namespaces, hosts,
// then listeners, so that hosts can only connect to a complete subsystem.
func (t *Target) dumpConfig() ([]rpc.Call, error) {
	var calls []rpc.Call
	add := func(method string, params any) error {
		c, err := rpc.NewCall(method, params)
		if err == nil {
			calls = append(calls, c)
		}
		return err
	}
	if err := add("nvmf_set_transport_limits", t.limits.Get()); err != nil {
		return nil, err
	}
	for _, in := range t.Subsystems() {
		if in.Subtype != "Discovery" {
			if err := add("nvmf_create_subsystem", SubsystemParams{NQN: in.NQN, SerialNumber: in.SerialNumber,
				ModelNumber: in.ModelNumber, AllowAnyHost: in.AllowAnyHost, MaxNamespaces: in.MaxNamespaces}); err != nil {
				return nil, err
			}
			for _, ns := range in.Namespaces {
				if err := add("nvmf_subsystem_add_ns", AddNSParams{NQN: in.NQN, Namespace: NamespaceParams(ns)}); err != nil {
					return nil, err
				}
			}
			for _, h := range in.Hosts {
				if err := add("nvmf_subsystem_add_host", HostParams{NQN: in.NQN, Host: h.NQN}); err != nil {
					return nil, err
				}
			}
		}
		for _, l := range in.Listeners {
			if err := add("nvmf_subsystem_add_listener", ListenerParams{NQN: in.NQN, ListenAddress: l}); err != nil {
				return nil, err
			}
		}
	}
	if calls == nil {
		calls = []rpc.Call{}
	}
	return calls, nil
}
