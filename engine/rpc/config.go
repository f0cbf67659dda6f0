package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// The config file is SPDK's: the live state of each module written as the RPC calls that
// recreate it, grouped in sections replayed in a fixed order.
//
//	{"subsystems": [
//	  {"subsystem": "bdev", "config": [
//	    {"method": "bdev_malloc_create", "params": {"name": "Malloc0", "num_blocks": 32768}}]},
//	  {"subsystem": "nvmf", "config": [...]}]}

// maxConfigBytes bounds the config file that LoadConfig reads.
const maxConfigBytes = 64 << 20

// maxConfigErrors bounds the validation errors LoadConfig reports at once.
const maxConfigErrors = 20

// Call is one recorded method call of a config section.
type Call struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params,omitempty"`
}

// NewCall builds a Call, marshalling params (nil means no params). Section dump functions
// use it.
func NewCall(method string, params any) (Call, error) {
	c := Call{Method: method}
	if params == nil {
		return c, nil
	}
	b, err := json.Marshal(params)
	if err != nil {
		return Call{}, fmt.Errorf("config call %s: encode params: %w", method, err)
	}
	c.Params = b
	return c, nil
}

// Config is the whole config file.
type Config struct {
	Subsystems []ConfigSection `json:"subsystems"`
}

// ConfigSection is one module's calls (SPDK calls a section a "subsystem").
type ConfigSection struct {
	Subsystem string `json:"subsystem"`
	Config    []Call `json:"config"`
}

// SaveConfig dumps every registered section, in replay order. Each dumped call must name
// a registered method with params that method accepts: a section that dumps what it could
// not load is a bug, reported here rather than at the next start. Safe for concurrent use;
// the dump functions run on the caller's goroutine.
func (r *Registry) SaveConfig() (*Config, error) {
	cfg := &Config{Subsystems: []ConfigSection{}}
	for _, s := range r.orderedSections() {
		calls, err := s.dump()
		if err != nil {
			return nil, fmt.Errorf("save config: subsystem %q: %w", s.name, err)
		}
		if calls == nil {
			calls = []Call{}
		}
		for i, c := range calls {
			if err := r.checkCall(c); err != nil {
				return nil, fmt.Errorf("save config: subsystem %q call %d (%s): %w", s.name, i, c.Method, err)
			}
		}
		cfg.Subsystems = append(cfg.Subsystems, ConfigSection{Subsystem: s.name, Config: calls})
	}
	return cfg, nil
}

// LoadConfig reads a config file and replays its calls. It first validates the whole file
// (known sections, each at most once; known methods; params each method accepts) and
// applies nothing if any check fails, reporting every problem (up to 20) by subsystem,
// call index and method. It then replays the sections in registered order, each section's
// calls in file order, and stops at the first call that fails, returning an error naming
// that call and wrapping the handler's error. Calls already applied stay applied, as in
// SPDK: the daemon is expected to exit on a failed load.
func (r *Registry) LoadConfig(ctx context.Context, rd io.Reader) error {
	cfg, err := decodeConfig(rd)
	if err != nil {
		return err
	}
	if err := r.validateConfig(cfg); err != nil {
		return err
	}
	bySection := make(map[string][]Call, len(cfg.Subsystems))
	for _, s := range cfg.Subsystems {
		bySection[s.Subsystem] = s.Config
	}
	for _, s := range r.orderedSections() {
		for i, c := range bySection[s.name] {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("config: %w", err)
			}
			if _, err := r.Invoke(ctx, c.Method, c.Params); err != nil {
				return fmt.Errorf("config: subsystem %q call %d (%s): %w", s.name, i, c.Method, err)
			}
		}
	}
	return nil
}

func decodeConfig(rd io.Reader) (*Config, error) {
	dec := json.NewDecoder(io.LimitReader(rd, maxConfigBytes+1))
	dec.DisallowUnknownFields()
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) && dec.InputOffset() >= maxConfigBytes {
			return nil, fmt.Errorf("config: larger than %d bytes", maxConfigBytes)
		}
		return nil, fmt.Errorf("config: %s", describeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("config: unexpected data after the top-level object")
	}
	return &cfg, nil
}

func (r *Registry) validateConfig(cfg *Config) error {
	known := map[string]bool{}
	for _, s := range r.orderedSections() {
		known[s.name] = true
	}
	seen := map[string]bool{}
	var errs []error
	for si, s := range cfg.Subsystems {
		switch {
		case !known[s.Subsystem]:
			errs = append(errs, fmt.Errorf("subsystem %q (section %d): unknown subsystem", s.Subsystem, si))
			continue
		case seen[s.Subsystem]:
			errs = append(errs, fmt.Errorf("subsystem %q (section %d): appears twice", s.Subsystem, si))
			continue
		}
		seen[s.Subsystem] = true
		for ci, c := range s.Config {
			if err := r.checkCall(c); err != nil {
				errs = append(errs, fmt.Errorf("subsystem %q call %d (%s): %w", s.Subsystem, ci, c.Method, err))
			}
		}
	}
	if len(errs) > maxConfigErrors {
		more := len(errs) - maxConfigErrors
		errs = append(errs[:maxConfigErrors], fmt.Errorf("and %d more errors", more))
	}
	if len(errs) > 0 {
		return fmt.Errorf("config: invalid, nothing applied:\n%w", errors.Join(errs...))
	}
	return nil
}

// checkCall validates c without running it.
func (r *Registry) checkCall(c Call) error {
	if c.Method == "" {
		return errorf(CodeInvalidRequest, "missing method")
	}
	m := r.lookup(c.Method)
	if m == nil {
		return errorf(CodeMethodNotFound, "method not found: %s", c.Method)
	}
	if err := checkParamsShape(c.Params); err != nil {
		return err
	}
	if m.check == nil {
		return nil
	}
	return m.check(c.Params)
}

// writeFileAtomic replaces path with data so that a reader (or a crash) sees either the
// old file or the new one: write a temp file in the same directory, fsync it, rename it
// over path, fsync the directory.
func writeFileAtomic(path string, data []byte) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly once renamed
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: fsync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write %s: open directory: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync directory: %w", path, err)
	}
	return nil
}
