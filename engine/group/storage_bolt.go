package group

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// BoltFile is the name of the node's bbolt file inside its data directory.
const BoltFile = "group.db"

var (
	bucketMeta    = []byte("meta")
	bucketEntries = []byte("entries")
	keyHardState  = []byte("hardstate")
	keySnapshot   = []byte("snapshot")
	keyBoot       = []byte("boot")
)

// BoltStorage is the production Storage: a bbolt file holding the HardState, the latest
// snapshot, the log entries (keyed by big-endian index) and the boot count. Reads are
// served from a MemStorage mirror loaded at open, so raft never waits on the file; writes
// go to the file first (one transaction, fsync'd unless NoSync), then to the mirror.
type BoltStorage struct {
	db *bolt.DB
	*MemStorage
}

// BoltOptions tune OpenBolt.
type BoltOptions struct {
	// NoSync skips fsync: for tests only, where a "crash" is a Close.
	NoSync bool
}

// OpenBolt opens (creating) the bbolt file in dir and loads it.
//
// Postconditions: the caller closes the storage.
func OpenBolt(dir string, o BoltOptions) (*BoltStorage, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open group storage: %w", err)
	}
	path := filepath.Join(dir, BoltFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: o.NoSync,
		NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("open group storage %s: %w", path, err)
	}
	s := &BoltStorage{db: db, MemStorage: NewMemStorage()}
	if err := s.load(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("load group storage %s: %w", path, err)
	}
	return s, nil
}

// load creates the buckets and fills the mirror.
func (s *BoltStorage) load() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		ents, err := tx.CreateBucketIfNotExists(bucketEntries)
		if err != nil {
			return err
		}
		ms := s.mem()
		if v := meta.Get(keyBoot); len(v) == 8 {
			s.MemStorage.mu.Lock()
			s.MemStorage.boot = binary.BigEndian.Uint64(v)
			s.MemStorage.mu.Unlock()
		}
		var snap raftpb.Snapshot
		if v := meta.Get(keySnapshot); v != nil {
			if err := snap.Unmarshal(v); err != nil {
				return fmt.Errorf("snapshot: %w", err)
			}
			if err := ms.ApplySnapshot(snap); err != nil {
				return fmt.Errorf("snapshot: %w", err)
			}
		}
		next := snap.Metadata.Index + 1
		c := ents.Cursor()
		for k, v := c.Seek(u64Key(next)); k != nil; k, v = c.Next() {
			var e raftpb.Entry
			if err := e.Unmarshal(v); err != nil {
				return fmt.Errorf("entry %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if e.Index != next {
				return fmt.Errorf("log gap: entry %d where %d was due", e.Index, next)
			}
			if err := ms.Append([]raftpb.Entry{e}); err != nil {
				return fmt.Errorf("entry %d: %w", e.Index, err)
			}
			next++
		}
		if v := meta.Get(keyHardState); v != nil {
			var hs raftpb.HardState
			if err := hs.Unmarshal(v); err != nil {
				return fmt.Errorf("hard state: %w", err)
			}
			return ms.SetHardState(hs)
		}
		return nil
	})
}

func u64Key(i uint64) []byte { return binary.BigEndian.AppendUint64(nil, i) }

// Save implements Storage: the file first, then the mirror.
func (s *BoltStorage) Save(hs raftpb.HardState, ents []raftpb.Entry, snap raftpb.Snapshot) error {
	if raft.IsEmptySnap(snap) && len(ents) == 0 && raft.IsEmptyHardState(hs) {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta, eb := tx.Bucket(bucketMeta), tx.Bucket(bucketEntries)
		if !raft.IsEmptySnap(snap) {
			if err := putSnapshot(meta, eb, snap, snap.Metadata.Index); err != nil {
				return err
			}
		}
		if len(ents) > 0 {
			if err := deleteFrom(eb, ents[0].Index); err != nil {
				return err
			}
			for i := range ents {
				v, err := ents[i].Marshal()
				if err != nil {
					return err
				}
				if err := eb.Put(u64Key(ents[i].Index), v); err != nil {
					return err
				}
			}
		}
		if !raft.IsEmptyHardState(hs) {
			v, err := hs.Marshal()
			if err != nil {
				return err
			}
			return meta.Put(keyHardState, v)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save raft state: %w", err)
	}
	return s.MemStorage.Save(hs, ents, snap)
}

// putSnapshot stores snap and deletes the entries up to compactTo.
func putSnapshot(meta, eb *bolt.Bucket, snap raftpb.Snapshot, compactTo uint64) error {
	v, err := snap.Marshal()
	if err != nil {
		return err
	}
	if err := meta.Put(keySnapshot, v); err != nil {
		return err
	}
	c := eb.Cursor()
	limit := u64Key(compactTo)
	for k, _ := c.First(); k != nil && bytes.Compare(k, limit) <= 0; k, _ = c.First() {
		if err := eb.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// deleteFrom deletes the entries at index from and after.
func deleteFrom(eb *bolt.Bucket, from uint64) error {
	c := eb.Cursor()
	for k, _ := c.Seek(u64Key(from)); k != nil; k, _ = c.Seek(u64Key(from)) {
		if err := eb.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Compact implements Storage.
func (s *BoltStorage) Compact(snap raftpb.Snapshot, compactTo uint64) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return putSnapshot(tx.Bucket(bucketMeta), tx.Bucket(bucketEntries), snap, compactTo)
	})
	if err != nil {
		return fmt.Errorf("store snapshot %d: %w", snap.Metadata.Index, err)
	}
	return s.MemStorage.Compact(snap, compactTo)
}

// NextBoot implements Storage.
func (s *BoltStorage) NextBoot() (uint64, error) {
	boot, _ := s.MemStorage.NextBoot()
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyBoot, u64Key(boot))
	})
	if err != nil {
		return 0, fmt.Errorf("store boot count: %w", err)
	}
	return boot, nil
}

// Reset implements Storage.
func (s *BoltStorage) Reset() error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketEntries); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return err
		}
		if _, err := tx.CreateBucket(bucketEntries); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		if err := meta.Delete(keySnapshot); err != nil {
			return err
		}
		return meta.Delete(keyHardState)
	})
	if err != nil {
		return fmt.Errorf("reset group storage: %w", err)
	}
	return s.MemStorage.Reset()
}

// Close implements Storage.
func (s *BoltStorage) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close group storage: %w", err)
	}
	return nil
}
