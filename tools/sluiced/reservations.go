package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"sluice/engine/group"
	"sluice/engine/reactor"
	"sluice/engine/reservation"
	"sluice/engine/reservation/manager"
)

// groupDecider makes the group node the reservation manager's decider: the group
// leader decides, with its backup's admission rule; a standalone node is a group of
// one that keeps its state in its own bbolt file (persist through power loss included).
type groupDecider struct{ n *group.Node }

func (g groupDecider) Reserve(ctx context.Context, vol [16]byte, cmd reservation.Command) (reservation.Result, error) {
	res, err := g.n.Reserve(ctx, vol, cmd)
	if err != nil && (errors.Is(err, group.ErrRetryable) || errors.Is(err, group.ErrOutcomeUnknown)) {
		// Refused with nothing changed, or decided with the answer lost: either way
		// the host retries (Command Interrupted, BUSY), and a retried command is
		// idempotent for the registrant that sent it.
		err = fmt.Errorf("%w: %w", err, manager.ErrRetryable)
	}
	return res, err
}

func (g groupDecider) Volume(vol [16]byte) (reservation.State, bool) {
	vs, ok := g.n.Volume(vol)
	return vs.State, ok
}

// reservations is the node's reservation service: its group node and the manager the
// protocol targets submit to.
type reservations struct {
	node *group.Node
	mgr  *manager.Manager
	stop func()
	done chan struct{}
	// quit ends the owner claimer (claimOwners) and whatever group call it waits on;
	// claimed is closed when it has returned (nil if it never started).
	quit    context.Context
	cancel  context.CancelFunc
	claimed chan struct{}
}

// startupRevalidateLimit bounds how long a start waits for the group's state before the
// protocol targets publish their volumes' views: a standalone node decides alone, in
// about a tick; a member needs its leader, which a group being restarted as a whole may
// not have yet. Two election timeouts let a live group elect one; past that the node
// starts on its local copy and revalidates when a leader appears (follow), rather than
// stay down, RPC included, until a quorum is back.
const startupRevalidateLimit = 2 * group.DefaultElectionTicks * group.DefaultTickInterval

// startReservations opens the group node in dataDir/group (standalone on first start)
// and the manager on the reactors. nodeID must stay the same across restarts.
//
// It returns once the node has revalidated (or startupRevalidateLimit passed): the
// config load that follows exports the volumes, and each export publishes its volume's
// view from the node's state at that moment. Before the first revalidation the node may
// not have applied its log nor the restart decision yet, and a view published from that
// state would let another host write through a reservation kept with PTPL during the
// first 100 to 200 ms after a restart.
func startReservations(dataDir string, nodeID uint64, peerAddr string, rs []*reactor.Reactor,
	log *slog.Logger) (*reservations, error) {
	n, err := group.Open(group.Config{NodeID: nodeID, DataDir: filepath.Join(dataDir, "group"),
		PeerAddr: peerAddr, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("reservation group: %w", err)
	}
	m := manager.New(manager.Config{Decider: groupDecider{n}, Reactors: rs, Logger: log})
	r := &reservations{node: n, mgr: m, done: make(chan struct{})}
	r.quit, r.cancel = context.WithCancel(context.Background())
	ch, cancel := n.Subscribe()
	r.stop = cancel
	start := time.Now()
	ctx, stop := context.WithTimeout(context.Background(), startupRevalidateLimit)
	if _, err := n.Revalidate(ctx); err != nil {
		log.Warn("reservations: group state not validated at start; serving from the local copy until it is",
			"waited", time.Since(start).Round(time.Millisecond), "err", err)
	} else {
		log.Info("reservations: group state validated", "took", time.Since(start).Round(time.Millisecond))
	}
	stop()
	go r.follow(ch, log)
	return r, nil
}

// follow keeps the manager's published views current with the group: after a leader
// change or a resync it revalidates (a ReadIndex barrier that also settles the
// whole-group restart decision) before republishing every volume, so that no view
// cached under an old leader stays in use (patent US10733066: the backup's copy is
// checked against the leader's before it serves); a change decided by a clear, an
// owner change or a power cycle is installed and its notices delivered to local hosts.
// Commands decided through this node's manager were installed and notified by it;
// installing them again is harmless and keeps commands decided on other members
// visible here.
func (r *reservations) follow(ch <-chan group.Event, log *slog.Logger) {
	defer close(r.done)
	revalidate := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := r.node.Revalidate(ctx); err != nil {
			log.Warn("reservations: revalidation after a leader change failed; views republished from the local copy", "err", err)
		}
		r.mgr.RefreshAll()
	}
	revalidate()
	for ev := range ch {
		switch ev.Kind {
		case group.EventLeader, group.EventResync:
			revalidate()
		case group.EventVolume:
			var notices []reservation.Notice
			if ev.Cause != group.CauseCommand {
				notices = ev.Result.Notices
			}
			r.mgr.Refresh(ev.Volume.NGUID, notices)
		}
	}
}

// close stops the owner claimer, the manager (waiting commands get the retryable
// answer) and the node.
func (r *reservations) close() error {
	r.cancel()
	if r.claimed != nil {
		<-r.claimed
	}
	r.stop()
	<-r.done
	r.mgr.Close()
	return r.node.Close()
}

// ownerClaimPeriod is how often the daemon looks for exported volumes that have no
// owner: often enough that a volume exported by RPC, or one whose owner the operator
// cleared, is claimed within seconds; rarely enough that an idle group's log stays quiet
// (a pass that finds every volume owned proposes nothing).
const ownerClaimPeriod = 10 * time.Second

// ownerClaimTimeout bounds one pass's group calls: a pass that cannot reach the group
// leader gives up and the next one tries again.
const ownerClaimTimeout = 15 * time.Second

// claimOwners names this node the owner of every volume it exports that has none
// (DESIGN.md: each namespace is exported by one node, its owner, named in the group
// configuration with its NGUID). It runs on its own goroutine, once at once and then
// every ownerClaimPeriod, so neither startup nor a reactor ever waits for the group; a
// volume another node owns is left alone, so that an owner the operator set with
// volume_set_owner stays. exported lists the NGUIDs of the volumes this node exports.
//
// Each pass first revalidates (a ReadIndex barrier through the group leader): a node
// that has just started or rejoined may not have applied the entry naming another owner
// yet, and claiming from that stale copy would take the volume from its owner. Two nodes
// that export one volume and claim it in the same moment both propose; the entry applied
// last wins everywhere and the other node, seeing an owner, stops claiming.
func (r *reservations) claimOwners(exported func() [][16]byte, log *slog.Logger) {
	r.claimed = make(chan struct{})
	go func() {
		defer close(r.claimed)
		t := time.NewTicker(ownerClaimPeriod)
		defer t.Stop()
		for {
			r.claimPass(exported(), log)
			select {
			case <-r.quit.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// claimPass claims the volumes in vols that have no owner.
func (r *reservations) claimPass(vols [][16]byte, log *slog.Logger) {
	if len(vols) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(r.quit, ownerClaimTimeout)
	defer cancel()
	if _, err := r.node.Revalidate(ctx); err != nil {
		log.Debug("reservations: owner claim deferred, group not reachable", "err", err)
		return
	}
	self := r.node.ID()
	for _, vol := range vols {
		if _, owned := r.node.Owner(vol); owned {
			continue
		}
		if err := r.node.SetOwner(ctx, vol, self); err != nil {
			log.Debug("reservations: owner claim deferred", "nguid", hex.EncodeToString(vol[:]), "err", err)
			return
		}
		log.Info("reservations: claimed volume ownership", "nguid", hex.EncodeToString(vol[:]), "node", self)
	}
}

// exportedVolumes lists the NGUIDs of the bdevs exported as NVMe namespaces or iSCSI
// LUNs, each once. It reads the targets' published configuration: no reactor is asked.
func (d *daemon) exportedVolumes() [][16]byte {
	var names []string
	for _, s := range d.target.Subsystems() {
		for _, ns := range s.Namespaces {
			names = append(names, ns.BdevName)
		}
	}
	for _, n := range d.iscsi.TargetNodes() {
		for _, l := range n.LUNs {
			names = append(names, l.BdevName)
		}
	}
	seen := map[[16]byte]bool{}
	var out [][16]byte
	for _, name := range names {
		b, err := d.bdevs.Get(name)
		if err != nil {
			continue // deleted since the listing
		}
		if v := b.NGUID(); !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// newNodeID draws a group node ID: random, nonzero, kept in the state file.
func newNodeID() (uint64, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, err
		}
		if id := binary.LittleEndian.Uint64(b[:]) >> 1; id != 0 {
			return id, nil
		}
	}
}
