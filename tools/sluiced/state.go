package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// stateFile keeps what the health log reports across restarts: how often the daemon
// started (power cycles), how often it stopped without a clean shutdown (unsafe
// shutdowns, detected by a "running" mark left behind by a crash or by a final flush
// that failed), and the power-on time of earlier runs (saved periodically and at stop,
// so a crash loses at most one period of it).
type stateFile struct {
	path            string
	PowerCycles     uint64 `json:"power_cycles"`
	UnsafeShutdowns uint64 `json:"unsafe_shutdowns"`
	PowerOnSeconds  uint64 `json:"power_on_seconds"`
	Running         bool   `json:"running"`
	// NodeID is this daemon's reservation group node ID, drawn at first start: the
	// group's raft log names the node by it.
	NodeID uint64 `json:"node_id,omitempty"`
}

func openState(path string) (*stateFile, error) {
	s := &stateFile{path: path}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("state: %w", err)
	default:
		if err := json.Unmarshal(b, s); err != nil {
			return nil, fmt.Errorf("state %s is corrupt (move it away to reset the counters): %w", path, err)
		}
	}
	if s.Running {
		s.UnsafeShutdowns++
	}
	s.PowerCycles++
	s.Running = true
	return s, s.save()
}

// markClean records a clean stop. Only call it once every volume's data reached stable
// storage: a stop whose final flush failed is an unsafe shutdown.
func (s *stateFile) markClean(powerOnSeconds uint64) error {
	s.Running = false
	s.PowerOnSeconds = powerOnSeconds
	return s.save()
}

// savePowerOn records the power-on time so far, still running.
func (s *stateFile) savePowerOn(powerOnSeconds uint64) error {
	s.PowerOnSeconds = powerOnSeconds
	return s.save()
}

// save writes atomically (write, fsync, rename, fsync of the directory): a torn or
// lost state file would lose the counters, and a rename not yet on disk could bring
// back the old file after a power loss.
func (s *stateFile) save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	dir, err := os.Open(filepath.Dir(s.path))
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	defer dir.Close()
	if err := dir.Sync(); err != nil {
		return fmt.Errorf("state: sync %s: %w", filepath.Dir(s.path), err)
	}
	return nil
}
