package replication

import (
	"context"
	"fmt"
	"sort"

	"sluice/engine/bdev"
	"sluice/engine/bdev/crypt"
	"sluice/engine/rpc"
)

// VolumeParams are replication_volume_start's parameters: replicate replica bdev Volume
// over dialing partnership Partnership. Passphrase is needed, and held in memory only,
// when the crypt volume stacked on it is keyed by a passphrase.
type VolumeParams struct {
	Volume       string       `json:"volume" rpc:"required"`
	Partnership  string       `json:"partnership" rpc:"required"`
	Mode         string       `json:"mode,omitempty"`
	JournalBytes int64        `json:"journal_bytes,omitempty"`
	Passphrase   crypt.Secret `json:"passphrase,omitempty"`
}

// StartVolume starts replicating a replica bdev: writes are tracked from now on, and
// the volume's stream runs whenever the partnership's tunnel is up.
func (s *Service) StartVolume(p VolumeParams) error {
	if err := s.startVolume(p); err != nil {
		return fmt.Errorf("replication_volume_start %q: %w", p.Volume, err)
	}
	return nil
}

func (s *Service) startVolume(p VolumeParams) error {
	mode, err := ParseMode(p.Mode)
	if err != nil {
		return err
	}
	if !safeName(p.Volume) {
		return fmt.Errorf("volume name %q: want [A-Za-z0-9._-]: %w", p.Volume, ErrInvalid)
	}
	v, err := s.volume(p.Volume)
	if err != nil {
		return err
	}
	pt, err := s.partnership(p.Partnership)
	if err != nil {
		return err
	}
	if pt.params.Role != RoleDial {
		return fmt.Errorf("partnership %q is the listening side: %w", p.Partnership, ErrInvalid)
	}
	return v.attach(pt, mode, p.JournalBytes, []byte(p.Passphrase))
}

// StopVolume ends a volume's replication: its stream stops and its bitmap is
// forgotten, so that a later start does a full sync.
func (s *Service) StopVolume(name string) error {
	v, err := s.volume(name)
	if err != nil {
		return err
	}
	if v.detach() == nil {
		return fmt.Errorf("volume %q is not replicating: %w", name, ErrState)
	}
	v.stopTracking()
	return nil
}

// VolumeStatus is replication_get_volumes' view of a replicated volume. Lag: LagWrites
// frames shipped and not yet acknowledged; LagBytes their data plus the dirty regions
// still to copy.
type VolumeStatus struct {
	Name          string       `json:"name"`
	Partnership   string       `json:"partnership,omitempty"`
	Mode          string       `json:"mode,omitempty"`
	State         string       `json:"state"`
	KeysExchanged bool         `json:"keys_exchanged"`
	Epoch         uint64       `json:"epoch"`
	Synced        bool         `json:"synced"`
	RegionBytes   uint32       `json:"region_bytes"`
	Regions       int          `json:"regions"`
	IntentRegions int          `json:"intent_regions"`
	ResyncRegions int          `json:"resync_regions"`
	LagWrites     uint64       `json:"lag_writes"`
	LagBytes      uint64       `json:"lag_bytes"`
	JournalBytes  int64        `json:"journal_bytes"`
	JournalCap    int64        `json:"journal_cap_bytes,omitempty"`
	JournalFull   uint64       `json:"journal_full"`
	NotShipped    uint64       `json:"not_shipped"`
	FramesSent    uint64       `json:"frames_sent"`
	BytesSent     uint64       `json:"bytes_sent"`
	FramesAcked   uint64       `json:"frames_acked"`
	FramesFailed  uint64       `json:"frames_failed"`
	FullSyncs     uint64       `json:"full_syncs"`
	ResyncPasses  uint64       `json:"resync_passes"`
	ResyncBytes   uint64       `json:"resync_bytes"`
	BitmapWrites  uint64       `json:"bitmap_writes"`
	Latency       LatencyStats `json:"latency"`
	LastError     string       `json:"last_error,omitempty"`
}

func (v *volume) status(resetLatency bool) VolumeStatus {
	epoch, synced := v.epoch()
	st := VolumeStatus{Name: v.name, State: v.State().String(), KeysExchanged: v.keysExchanged.Load(),
		Epoch: epoch, Synced: synced, RegionBytes: v.regionBytes, Regions: v.rg.n,
		IntentRegions: bitCount(v.rg.intent), ResyncRegions: bitCount(v.rg.resync),
		JournalBytes: v.journalBytes.Load(), JournalFull: v.st.journalFull.Load(),
		NotShipped: v.st.notShipped.Load(), FramesSent: v.st.framesSent.Load(),
		BytesSent: v.st.bytesSent.Load(), FramesAcked: v.st.acked.Load(),
		FramesFailed: v.st.failed.Load(), FullSyncs: v.st.fullSyncs.Load(),
		ResyncPasses: v.st.resyncPasses.Load(), ResyncBytes: v.st.resyncBytes.Load(),
		BitmapWrites: v.st.bitmapWrites.Load(), Latency: v.lat.stats(resetLatency)}
	if att := v.att.Load(); att != nil {
		st.Partnership, st.Mode, st.JournalCap = att.partner, att.mode.String(), att.journalCap
	}
	if pushed, retired := v.st.pushed.Load(), v.st.retired.Load(); pushed > retired {
		st.LagWrites = pushed - retired
	}
	st.LagBytes = uint64(max(0, v.journalBytes.Load()+v.syncBytes.Load())) +
		uint64(st.ResyncRegions)*uint64(v.regionBytes)
	if e := v.st.lastErr.Load(); e != nil {
		st.LastError = *e
	}
	return st
}

// VolumeQuery filters replication_get_volumes; ResetLatency starts a new latency
// window after this answer.
type VolumeQuery struct {
	Name         string `json:"name,omitempty"`
	ResetLatency bool   `json:"reset_latency,omitempty"`
}

// NameQuery filters by name when given.
type NameQuery struct {
	Name string `json:"name,omitempty"`
}

// PartnershipDeleteParams names a partnership.
type PartnershipDeleteParams struct {
	Name string `json:"name" rpc:"required"`
}

// IdentityResult is replication_get_identity's answer.
type IdentityResult struct {
	PublicKey string `json:"public_key"`
}

// RegisterRPC makes the module's Service and registers its methods and its config
// section. It must run before a config is loaded, like every bdev module's: the bdev
// section replays bdev_replica_create.
func RegisterRPC(reg *rpc.Registry, m *bdev.Manager, env Env) *Service {
	s := NewService(m, env)
	s.registerBdevRPC(reg)
	s.registerPartnershipRPC(reg)
	s.registerVolumeRPC(reg)
	reg.RegisterConfigSection("replication", 15, s.dumpConfig)
	return s
}

func (s *Service) registerBdevRPC(reg *rpc.Registry) {
	rpc.Handle(reg, "bdev_replica_create", func(_ context.Context, p ReplicaParams) (string, error) {
		b, err := s.CreateReplica(p)
		if err != nil {
			return "", err
		}
		return b.Name(), nil
	})
	rpc.Handle(reg, "bdev_replica_delete", func(ctx context.Context, p bdev.NameParams) (bool, error) {
		return true, s.bdevs.Delete(ctx, p.Name, Module)
	})
}

func (s *Service) registerPartnershipRPC(reg *rpc.Registry) {
	rpc.Handle(reg, "replication_get_identity", func(context.Context, struct{}) (IdentityResult, error) {
		id, err := s.Identity()
		if err != nil {
			return IdentityResult{}, err
		}
		return IdentityResult{PublicKey: id.AuthorizedKey()}, nil
	})
	rpc.Handle(reg, "replication_get_node_info", func(context.Context, struct{}) (NodeInfo, error) {
		return s.NodeInfo(), nil
	})
	rpc.Handle(reg, "replication_configure_node", func(_ context.Context, c NodeConfig) (bool, error) {
		s.Configure(c)
		return true, nil
	})
	rpc.Handle(reg, "replication_partnership_create",
		func(ctx context.Context, p PartnershipParams) (PartnershipStatus, error) {
			pt, err := s.CreatePartnership(ctx, p)
			if err != nil {
				return PartnershipStatus{}, err
			}
			return pt.Status(), nil
		})
	rpc.Handle(reg, "replication_partnership_delete",
		func(_ context.Context, p PartnershipDeleteParams) (bool, error) {
			return true, s.DeletePartnership(p.Name)
		})
	rpc.Handle(reg, "replication_get_partnerships",
		func(_ context.Context, q NameQuery) ([]PartnershipStatus, error) {
			out := []PartnershipStatus{}
			for _, p := range s.partnershipList() {
				if q.Name == "" || q.Name == p.name {
					out = append(out, p.Status())
				}
			}
			if q.Name != "" && len(out) == 0 {
				return nil, fmt.Errorf("partnership %q: %w", q.Name, ErrNotFound)
			}
			return out, nil
		})
	rpc.Handle(reg, "replication_promote", func(ctx context.Context, p PromoteParams) (PromoteResult, error) {
		return s.Promote(ctx, p)
	})
}

func (s *Service) registerVolumeRPC(reg *rpc.Registry) {
	rpc.Handle(reg, "replication_volume_start", func(_ context.Context, p VolumeParams) (bool, error) {
		return true, s.StartVolume(p)
	})
	rpc.Handle(reg, "replication_volume_stop", func(_ context.Context, p bdev.NameParams) (bool, error) {
		return true, s.StopVolume(p.Name)
	})
	rpc.Handle(reg, "replication_get_volumes", func(_ context.Context, q VolumeQuery) ([]VolumeStatus, error) {
		out := []VolumeStatus{}
		for _, v := range s.volumeList() {
			if q.Name == "" || q.Name == v.name {
				out = append(out, v.status(q.ResetLatency))
			}
		}
		if q.Name != "" && len(out) == 0 {
			return nil, fmt.Errorf("replica bdev %q: %w", q.Name, ErrNotFound)
		}
		return out, nil
	})
}

// dumpConfig replays the partnerships (the dialing ones without waiting for their
// partner, so that a node whose partner is down still starts) and the volumes'
// replications, never a passphrase: a passphrase-keyed volume's start needs it again.
func (s *Service) dumpConfig() ([]rpc.Call, error) {
	calls := []rpc.Call{}
	nc := func() NodeConfig {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.node
	}()
	if nc.CapacityBytes != 0 || len(nc.Labels) != 0 {
		c, err := rpc.NewCall("replication_configure_node", nc)
		if err != nil {
			return nil, err
		}
		calls = append(calls, c)
	}
	for _, p := range s.partnershipList() {
		pp := p.params
		pp.NoWait = pp.Role == RoleDial
		c, err := rpc.NewCall("replication_partnership_create", pp)
		if err != nil {
			return nil, err
		}
		calls = append(calls, c)
	}
	vols := s.volumeList()
	sort.Slice(vols, func(i, j int) bool { return vols[i].name < vols[j].name })
	for _, v := range vols {
		att := v.att.Load()
		if att == nil {
			continue
		}
		c, err := rpc.NewCall("replication_volume_start", VolumeParams{Volume: v.name,
			Partnership: att.partner, Mode: att.mode.String(), JournalBytes: att.journalCap})
		if err != nil {
			return nil, err
		}
		calls = append(calls, c)
	}
	return calls, nil
}
