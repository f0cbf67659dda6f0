package replication

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"sluice/engine/bdev"
	"sluice/engine/bdev/crypt"
	"sluice/engine/mem"
	"sluice/engine/reactor"
)

// Env is what the replication module needs of the daemon.
type Env struct {
	// Mem returns the memory core of reactor i: a replica channel on that reactor
	// copies the frames it ships into buffers of that core, on that reactor only.
	Mem func(i int) *mem.Core
	// Control runs the control plane's I/O (resync reads, the partner's writes, header
	// I/O at promotion); the goroutines only submit through it and wait.
	Control *reactor.Reactor
	// DataDir holds the node's identity, the bitmaps, the partner's copies and their
	// state ("" keeps everything in memory: tests).
	DataDir string
	Logger  *slog.Logger
}

// Service is a node's replication: its identity, its partnerships (as the replicating
// node, A, and as the partner, B), the replica bdevs it replicates and the copies it
// holds for others. Safe for concurrent use; its methods run on the control plane.
type Service struct {
	env   Env
	bdevs *bdev.Manager
	log   *slog.Logger

	idMu sync.Mutex
	id   *Identity // +checklocks:idMu; loaded at first use

	mu      sync.Mutex
	volumes map[string]*volume      // +checklocks:mu; A: replica bdevs by name
	parts   map[string]*Partnership // +checklocks:mu
	node    NodeConfig              // +checklocks:mu

	// newTarget makes the partner's copy of a volume; tests swap in malloc bdevs.
	newTarget func(p *Partnership, name string, size uint64, bs uint32) (*bdev.Bdev, error)
}

// NewService makes the module's state. The node's identity is loaded (or created) at
// first use, so that a daemon whose key file is unreadable still starts and says why
// in the answer to the first replication call.
func NewService(m *bdev.Manager, env Env) *Service {
	s := &Service{env: env, bdevs: m, log: env.Logger, volumes: map[string]*volume{},
		parts: map[string]*Partnership{}}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s.newTarget = s.fileTarget
	return s
}

// Identity is the node's key pair: data directory's replication/id_ed25519, or one in
// memory without a data directory.
func (s *Service) Identity() (*Identity, error) {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	if s.id != nil {
		return s.id, nil
	}
	var err error
	var id *Identity
	if s.env.DataDir == "" {
		id, err = NewIdentity()
	} else {
		id, err = LoadIdentity(filepath.Join(s.env.DataDir, "replication", "id_ed25519"))
	}
	if err != nil {
		return nil, err
	}
	s.id = id
	return id, nil
}

func (s *Service) cryptEnv() crypt.Env {
	return crypt.Env{Mem: s.env.Mem, Control: s.env.Control, DataDir: s.env.DataDir}
}

func (s *Service) addVolume(v *volume) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.volumes[v.name] = v
}

func (s *Service) removeVolume(v *volume) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.volumes[v.name] == v {
		delete(s.volumes, v.name)
	}
}

func (s *Service) volume(name string) (*volume, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.volumes[name]
	if v == nil {
		return nil, fmt.Errorf("replica bdev %q: %w", name, ErrNotFound)
	}
	return v, nil
}

func (s *Service) partnership(name string) (*Partnership, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.parts[name]
	if p == nil {
		return nil, fmt.Errorf("partnership %q: %w", name, ErrNotFound)
	}
	return p, nil
}

func (s *Service) partnershipList() []*Partnership {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Partnership, 0, len(s.parts))
	for _, p := range s.parts {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func (s *Service) volumeList() []*volume {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*volume, 0, len(s.volumes))
	for _, v := range s.volumes {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// ioTimeout bounds one control-plane I/O: a liveness bound, not a speed check.
const ioTimeout = 30 * time.Second

// baseIO runs one I/O on b from a goroutine: the control reactor opens (or shares) its
// channel for b and submits, this goroutine waits for the completion. If ctx ends first
// the I/O keeps buf and a channel reference; a goroutine gives them back at completion.
func (s *Service) baseIO(ctx context.Context, b *bdev.Bdev, typ bdev.IOType, off uint64, buf []byte) error {
	r := s.env.Control
	io := &bdev.IO{Type: typ, Offset: off, Length: uint64(len(buf)), Buf: buf}
	done := make(chan struct{})
	io.Done = func(*bdev.IO) { close(done) }
	var ch *bdev.Channel
	var openErr error
	if err := r.Do(func() {
		if ch, openErr = b.GetChannel(r); openErr == nil {
			ch.Submit(io)
		}
	}); err != nil {
		return fmt.Errorf("control reactor: %w", err)
	}
	if openErr != nil {
		return openErr
	}
	ctx, cancel := context.WithTimeout(ctx, ioTimeout)
	defer cancel()
	select {
	case <-done:
	case <-ctx.Done():
		go func() {
			<-done
			_ = r.Do(ch.Put)
		}()
		return fmt.Errorf("%v of %d bytes at %d on %q: %w", typ, len(buf), off, b.Name(), ctx.Err())
	}
	if err := r.Do(ch.Put); err != nil {
		return fmt.Errorf("control reactor: %w", err)
	}
	if io.Status != bdev.StatusSuccess {
		return fmt.Errorf("%v of %d bytes at %d on %q: %v (errno %d)", typ, len(buf), off,
			b.Name(), io.Status, io.Errno)
	}
	return nil
}

// NodeConfig is what the node tells an agent choosing a partner: labels it matches on
// and the capacity it offers for copies (0: the free space of the data directory).
type NodeConfig struct {
	Labels        map[string]string `json:"labels,omitempty"`
	CapacityBytes uint64            `json:"capacity_bytes,omitempty"`
}

// NodeInfo is replication_get_node_info's answer.
type NodeInfo struct {
	PublicKey     string            `json:"public_key"`
	Labels        map[string]string `json:"labels,omitempty"`
	CapacityBytes uint64            `json:"capacity_bytes"`
	UsedBytes     uint64            `json:"used_bytes"`
	FreeBytes     uint64            `json:"free_bytes"`
}

// Configure sets the node's labels and offered capacity.
func (s *Service) Configure(c NodeConfig) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.node = c
}

// NodeInfo describes the node to an agent: its key, labels and free capacity for
// partners' copies (the offered capacity, or the data directory's free space, less
// what the copies it holds take).
func (s *Service) NodeInfo() NodeInfo {
	s.mu.Lock()
	nc := s.node
	parts := make([]*Partnership, 0, len(s.parts))
	for _, p := range s.parts {
		parts = append(parts, p)
	}
	s.mu.Unlock()
	var used uint64
	for _, p := range parts {
		used += p.copyBytes()
	}
	capacity := nc.CapacityBytes
	if capacity == 0 {
		var st unix.Statfs_t
		dir := s.env.DataDir
		if dir == "" {
			dir = os.TempDir()
		}
		if unix.Statfs(dir, &st) == nil {
			capacity = st.Bavail*uint64(st.Bsize) + used
		}
	}
	free := uint64(0)
	if capacity > used {
		free = capacity - used
	}
	key := ""
	if id, err := s.Identity(); err == nil {
		key = id.AuthorizedKey()
	}
	return NodeInfo{PublicKey: key, Labels: nc.Labels, CapacityBytes: capacity,
		UsedBytes: used, FreeBytes: free}
}
