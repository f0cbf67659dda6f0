package group

import (
	"errors"
	"fmt"
	"sync"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Storage is where a node keeps its raft state: the log, the HardState and the latest
// snapshot (whose data is the whole replicated state, state.go), plus a boot counter. raft
// reads it through the embedded raft.Storage; the node writes it through the rest, always
// from its loop, one call at a time.
//
// Production uses BoltStorage (a bbolt file in the data directory); the simulator and
// tests use MemStorage, whose value outlives a simulated crash the way a disk does.
type Storage interface {
	raft.Storage
	// Save makes a Ready's durable part durable before the node sends the Ready's
	// messages: snap (if not empty) replaces the log up to its index, ents are appended
	// (replacing any conflicting suffix), hs (if not empty) is stored. All or nothing.
	Save(hs raftpb.HardState, ents []raftpb.Entry, snap raftpb.Snapshot) error
	// Compact stores snap, taken by the node from its applied state at an index it has
	// applied, and drops the log entries up to compactTo (≤ snap's index), keeping the
	// rest for followers that lag.
	Compact(snap raftpb.Snapshot, compactTo uint64) error
	// NextBoot increments the persisted boot count and returns it (EntryID.Boot).
	NextBoot() (uint64, error)
	// Reset erases the raft state, keeping the boot count: the node leaves its group or
	// joins another.
	Reset() error
	// Close releases the storage.
	Close() error
}

// MemStorage is a Storage in memory: raft.MemoryStorage plus a boot counter. Every write
// is "durable" at once. It is safe for concurrent use.
type MemStorage struct {
	mu sync.Mutex
	// +checklocks:mu
	ms *raft.MemoryStorage
	// +checklocks:mu
	boot uint64
}

// NewMemStorage returns an empty MemStorage.
func NewMemStorage() *MemStorage { return &MemStorage{ms: raft.NewMemoryStorage()} }

func (s *MemStorage) mem() *raft.MemoryStorage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ms
}

// InitialState implements raft.Storage.
func (s *MemStorage) InitialState() (raftpb.HardState, raftpb.ConfState, error) {
	return s.mem().InitialState()
}

// Entries implements raft.Storage.
func (s *MemStorage) Entries(lo, hi, maxSize uint64) ([]raftpb.Entry, error) {
	return s.mem().Entries(lo, hi, maxSize)
}

// Term implements raft.Storage.
func (s *MemStorage) Term(i uint64) (uint64, error) { return s.mem().Term(i) }

// LastIndex implements raft.Storage.
func (s *MemStorage) LastIndex() (uint64, error) { return s.mem().LastIndex() }

// FirstIndex implements raft.Storage.
func (s *MemStorage) FirstIndex() (uint64, error) { return s.mem().FirstIndex() }

// Snapshot implements raft.Storage.
func (s *MemStorage) Snapshot() (raftpb.Snapshot, error) { return s.mem().Snapshot() }

// Save implements Storage.
func (s *MemStorage) Save(hs raftpb.HardState, ents []raftpb.Entry, snap raftpb.Snapshot) error {
	ms := s.mem()
	if !raft.IsEmptySnap(snap) {
		if err := ms.ApplySnapshot(snap); err != nil && !errors.Is(err, raft.ErrSnapOutOfDate) {
			return fmt.Errorf("save snapshot %d: %w", snap.Metadata.Index, err)
		}
	}
	if err := ms.Append(ents); err != nil {
		return fmt.Errorf("save entries: %w", err)
	}
	if !raft.IsEmptyHardState(hs) {
		if err := ms.SetHardState(hs); err != nil {
			return fmt.Errorf("save hard state: %w", err)
		}
	}
	return nil
}

// Compact implements Storage.
func (s *MemStorage) Compact(snap raftpb.Snapshot, compactTo uint64) error {
	ms := s.mem()
	md := snap.Metadata
	if _, err := ms.CreateSnapshot(md.Index, &md.ConfState, snap.Data); err != nil {
		return fmt.Errorf("create snapshot %d: %w", md.Index, err)
	}
	if err := ms.Compact(compactTo); err != nil && !errors.Is(err, raft.ErrCompacted) {
		return fmt.Errorf("compact log to %d: %w", compactTo, err)
	}
	return nil
}

// NextBoot implements Storage.
func (s *MemStorage) NextBoot() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.boot++
	return s.boot, nil
}

// Reset implements Storage.
func (s *MemStorage) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ms = raft.NewMemoryStorage()
	return nil
}

// Close implements Storage; a MemStorage stays readable (a simulated disk outlives its
// node).
func (s *MemStorage) Close() error { return nil }
