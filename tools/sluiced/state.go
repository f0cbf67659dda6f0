package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// stateFile keeps what the health log reports across restarts: how often the daemon
// started (power cycles) and how often it stopped without a clean shutdown (unsafe
// shutdowns), the latter detected by a "running" mark left behind by a crash.
type stateFile struct {
	path            string
	PowerCycles     uint64 `json:"power_cycles"`
	UnsafeShutdowns uint64 `json:"unsafe_shutdowns"`
	Running         bool   `json:"running"`
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

func (s *stateFile) markClean() error {
	s.Running = false
	return s.save()
}

// save writes atomically: a torn state file would lose the counters.
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
	return os.Rename(tmp, s.path)
}
