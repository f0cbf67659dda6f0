package group

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	"sluice/engine/reservation"
	"sluice/engine/rpc"
)

// RPC parameters.
type (
	// CreateParams are group_create's parameters.
	CreateParams struct {
		Name string `json:"name" rpc:"required"`
	}
	// JoinParams are group_join's parameters: the peer address of any member.
	JoinParams struct {
		PeerAddress string `json:"peer_address" rpc:"required"`
	}
	// MemberParams are group_add_member's, group_remove_member's and
	// group_designate_bgl's parameters.
	MemberParams struct {
		NodeID      uint64 `json:"node_id" rpc:"required"`
		PeerAddress string `json:"peer_address"`
	}
	// ReplaceParams are group_replace_member's parameters.
	ReplaceParams struct {
		OldNodeID      uint64 `json:"old_node_id" rpc:"required"`
		NewNodeID      uint64 `json:"new_node_id" rpc:"required"`
		NewPeerAddress string `json:"new_peer_address" rpc:"required"`
	}
	// NGUIDParams name a volume by its NGUID in hex (32 digits; dashes allowed).
	NGUIDParams struct {
		NGUID string `json:"nguid" rpc:"required"`
	}
	// ClearParams are reservation_clear's parameters.
	ClearParams struct {
		NGUID string `json:"nguid" rpc:"required"`
		Force bool   `json:"force"`
	}
	// VerifyParams are group_verify's parameters (the config section's replay).
	VerifyParams struct {
		Name   string `json:"name" rpc:"required"`
		NodeID uint64 `json:"node_id" rpc:"required"`
	}
	// OwnerParams are volume_set_owner's parameters: node_id 0 clears the owner.
	OwnerParams struct {
		NGUID  string `json:"nguid" rpc:"required"`
		NodeID uint64 `json:"node_id" rpc:"required"`
	}
)

// OwnerInfo is volume_get_owner's result: the node that exports the volume, 0 if none
// is named, as this node has applied the group configuration.
type OwnerInfo struct {
	NGUID string `json:"nguid"`
	Owner uint64 `json:"owner"`
}

// ReservationInfo is reservation_get's result.
type ReservationInfo struct {
	NGUID      string `json:"nguid"`
	Owner      uint64 `json:"owner,omitempty"`
	Generation uint32 `json:"generation"`
	// Type names the reservation type; RType is its NVMe number (0: none).
	Type        string           `json:"type"`
	RType       uint8            `json:"rtype"`
	PTPL        bool             `json:"ptpl"`
	Holder      *RegistrantInfo  `json:"holder,omitempty"`
	Registrants []RegistrantInfo `json:"registrants"`
	SCSI2Holder string           `json:"scsi2_holder,omitempty"`
	// Index and Incarnation say which applied state this is (VolumeState).
	Index       uint64 `json:"index"`
	Incarnation uint64 `json:"incarnation"`
}

// RegistrantInfo is one registrant in a ReservationInfo.
type RegistrantInfo struct {
	Identity       string `json:"identity"`
	Protocol       string `json:"protocol"`
	HostID         string `json:"hostid,omitempty"`
	Initiator      string `json:"initiator,omitempty"`
	ISID           uint64 `json:"isid,omitempty"`
	TargetPort     uint16 `json:"target_port,omitempty"`
	AllTargetPorts bool   `json:"all_target_ports,omitempty"`
	Key            uint64 `json:"key"`
	Holder         bool   `json:"holder"`
}

// ParseNGUID parses 32 hex digits, dashes ignored.
func ParseNGUID(s string) ([16]byte, error) {
	var v [16]byte
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		return v, fmt.Errorf("nguid %q: want 32 hex digits: %w", s, rpc.ErrInvalidParams)
	}
	copy(v[:], b)
	return v, nil
}

// reservationInfo converts a volume's record for reservation_get.
func reservationInfo(v VolumeState) ReservationInfo {
	st := &v.State
	out := ReservationInfo{NGUID: hex.EncodeToString(v.NGUID[:]), Owner: v.Owner,
		Generation: st.Generation, Type: st.Type.String(), RType: st.Type.NVMe(), PTPL: st.PTPL,
		Registrants: []RegistrantInfo{}, Index: v.Index, Incarnation: v.Incarnation}
	if st.Type == reservation.TypeNone {
		out.Type = "none"
	}
	for _, r := range st.Registrants {
		id := r.Subject.ID
		ri := RegistrantInfo{Identity: id.String(), Protocol: id.Protocol.String(), Key: r.Key,
			AllTargetPorts: r.Subject.AllTargetPorts,
			Holder:         st.Type != reservation.TypeNone && (r.Holder || st.Type.AllRegistrants())}
		if id.Protocol == reservation.ProtocolNVMe {
			ri.HostID = hex.EncodeToString(id.HostID[:])
		} else {
			ri.Initiator, ri.ISID, ri.TargetPort = id.Initiator, id.ISID, id.TargetPort
		}
		out.Registrants = append(out.Registrants, ri)
		if r.Holder {
			h := ri
			out.Holder = &h
		}
	}
	if st.SCSI2.Held {
		out.SCSI2Holder = st.SCSI2.Holder.String()
	}
	return out
}

// rpcErr maps the group's sentinels onto the RPC sentinels, keeping the text.
func rpcErr(err error) error {
	var s error
	switch codeOf(err) {
	case CodeOK:
		return nil
	case CodeInvalid:
		s = rpc.ErrInvalid
	case CodeExists:
		s = rpc.ErrExists
	case CodeNotFound:
		s = rpc.ErrNotFound
	case CodeNotEmpty, CodeStandalone:
		s = rpc.ErrInvalidState
	case CodeOutcomeUnknown:
		s = rpc.ErrTimeout
	default:
		if codeOf(err) < CodeOutcomeUnknown { // a refusal: try again
			s = rpc.ErrAgain
		}
	}
	if s == nil {
		return err
	}
	return fmt.Errorf("%w (%w)", err, s)
}

// RegisterRPC registers the group's methods and its config section with reg.
//
// The config section: group membership lives in the group's own storage (the data
// directory), not in the config file, because it changes without the operator (a member
// joins elsewhere, a BGL is designated) and must not be replayed (a second group_join
// would fail). The section records only that this node belongs to group G as node N, as
// one group_verify call: on a restart the replay checks that the data directory still
// holds that membership, and fails loudly if it was lost instead of silently serving as
// a standalone node.
func RegisterRPC(reg *rpc.Registry, n *Node) {
	rpc.Handle(reg, "group_create", func(ctx context.Context, p CreateParams) (bool, error) {
		return true, rpcErr(n.Create(ctx, p.Name))
	})
	rpc.Handle(reg, "group_join", func(ctx context.Context, p JoinParams) (bool, error) {
		return true, rpcErr(n.Join(ctx, p.PeerAddress))
	})
	rpc.Handle(reg, "group_leave", func(ctx context.Context, _ struct{}) (bool, error) {
		return true, rpcErr(n.Leave(ctx))
	})
	rpc.Handle(reg, "group_add_member", func(ctx context.Context, p MemberParams) (bool, error) {
		return true, rpcErr(n.AddMember(ctx, p.NodeID, p.PeerAddress))
	})
	rpc.Handle(reg, "group_remove_member", func(ctx context.Context, p MemberParams) (bool, error) {
		return true, rpcErr(n.RemoveMember(ctx, p.NodeID))
	})
	rpc.Handle(reg, "group_replace_member", func(ctx context.Context, p ReplaceParams) (bool, error) {
		return true, rpcErr(n.ReplaceMember(ctx, p.OldNodeID, p.NewNodeID, p.NewPeerAddress))
	})
	rpc.Handle(reg, "group_designate_bgl", func(ctx context.Context, p MemberParams) (bool, error) {
		return true, rpcErr(n.DesignateBGL(ctx, p.NodeID))
	})
	rpc.Handle(reg, "group_get_status", func(ctx context.Context, _ struct{}) (Status, error) {
		return statusForRPC(ctx, n), nil
	})
	rpc.Handle(reg, "group_verify", func(_ context.Context, p VerifyParams) (bool, error) {
		s := n.Status()
		if s.Group != p.Name || s.NodeID != p.NodeID {
			return false, fmt.Errorf("config says node %d of group %q, data directory holds node %d of %q: %w",
				p.NodeID, p.Name, s.NodeID, s.Group, rpc.ErrInvalidState)
		}
		return true, nil
	})
	registerReservationRPC(reg, n)
	registerOwnerRPC(reg, n)
	reg.RegisterConfigSection("group", 5, func() ([]rpc.Call, error) {
		s := n.Status()
		if s.Standalone {
			return nil, nil
		}
		call, err := rpc.NewCall("group_verify", VerifyParams{Name: s.Group, NodeID: s.NodeID})
		if err != nil {
			return nil, err
		}
		return []rpc.Call{call}, nil
	})
}

// statusForRPC is this node's Status, with the leader's view of the BGL (which only the
// leader has) when the leader answers in time.
func statusForRPC(ctx context.Context, n *Node) Status {
	s := n.Status()
	if s.BGLSync != nil || s.Standalone || s.Leader == 0 || s.Leader == s.NodeID {
		return s
	}
	ls, err := n.LeaderStatus(ctx)
	if err != nil {
		return s
	}
	s.BGLSync = ls.BGLSync
	for i := range s.Members {
		for _, m := range ls.Members {
			if m.ID == s.Members[i].ID {
				s.Members[i].Match, s.Members[i].LastAckMs = m.Match, m.LastAckMs
			}
		}
	}
	return s
}

func registerReservationRPC(reg *rpc.Registry, n *Node) {
	rpc.Handle(reg, "reservation_get", func(_ context.Context, p NGUIDParams) (ReservationInfo, error) {
		vol, err := ParseNGUID(p.NGUID)
		if err != nil {
			return ReservationInfo{}, err
		}
		v, _ := n.Volume(vol)
		return reservationInfo(v), nil
	})
	rpc.Handle(reg, "reservation_clear", func(ctx context.Context, p ClearParams) (bool, error) {
		vol, err := ParseNGUID(p.NGUID)
		if err != nil {
			return false, err
		}
		return true, rpcErr(n.ClearReservation(ctx, vol, p.Force))
	})
}

// registerOwnerRPC registers the methods that name a volume's owner, the one node that
// exports it (DESIGN.md: "each namespace is exported by one node, its owner, named in
// the group configuration with its NGUID").
func registerOwnerRPC(reg *rpc.Registry, n *Node) {
	rpc.Handle(reg, "volume_set_owner", func(ctx context.Context, p OwnerParams) (bool, error) {
		vol, err := ParseNGUID(p.NGUID)
		if err != nil {
			return false, err
		}
		if p.NodeID != 0 && !isMember(n.Status(), p.NodeID) {
			// The group applies any ID; an owner no member answers for would leave the
			// volume's notices undelivered, so the operator's typo stops here.
			return false, fmt.Errorf("node %d is not a member of this node's group: %w",
				p.NodeID, rpc.ErrInvalidParams)
		}
		return true, rpcErr(n.SetOwner(ctx, vol, p.NodeID))
	})
	rpc.Handle(reg, "volume_get_owner", func(_ context.Context, p NGUIDParams) (OwnerInfo, error) {
		vol, err := ParseNGUID(p.NGUID)
		if err != nil {
			return OwnerInfo{}, err
		}
		owner, _ := n.Owner(vol)
		return OwnerInfo{NGUID: hex.EncodeToString(vol[:]), Owner: owner}, nil
	})
}

// isMember reports whether node id is in s's member list (learners included).
func isMember(s Status, id uint64) bool {
	for _, m := range s.Members {
		if m.ID == id {
			return true
		}
	}
	return false
}
