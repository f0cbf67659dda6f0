package bdev

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Manager is the registry of a daemon's bdevs. Safe for concurrent use; it is touched
// on the control plane only (create, delete, lookup at namespace setup), never per I/O.
type Manager struct {
	mu        sync.Mutex
	bdevs     map[string]*Bdev // +checklocks:mu
	registrar BufferRegistrar  // +checklocks:mu
}

// NewManager makes an empty registry.
func NewManager() *Manager { return &Manager{bdevs: map[string]*Bdev{}} }

// SetBufferRegistrar sets the function that io_uring-based backends call once for each
// ring they create, on the channel's reactor, to register the I/O buffers' memory as
// fixed buffers. Backends take it when they are created, so the daemon sets it before
// it loads its config; bdevs created earlier keep running without fixed buffers. A
// failing registrar only costs the speed-up: the backend logs it once per bdev.
func (m *Manager) SetBufferRegistrar(reg BufferRegistrar) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.registrar = reg
}

func (m *Manager) bufferRegistrar() BufferRegistrar {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.registrar
}

// Register validates cfg and adds a bdev served by be. On error be is closed.
func (m *Manager) Register(cfg Config, be Backend) (*Bdev, error) {
	b, err := newBdev(cfg, be)
	if err != nil {
		be.Close()
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.bdevs[cfg.Name]; dup {
		be.Close()
		return nil, fmt.Errorf("bdev %q: %w", cfg.Name, ErrExists)
	}
	m.bdevs[cfg.Name] = b
	return b, nil
}

// Get finds a bdev by name.
func (m *Manager) Get(name string) (*Bdev, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.bdevs[name]
	if b == nil {
		return nil, fmt.Errorf("bdev %q: %w", name, ErrNotFound)
	}
	return b, nil
}

// List returns the bdevs sorted by name.
func (m *Manager) List() []*Bdev {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Bdev, 0, len(m.bdevs))
	for _, b := range m.bdevs {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].cfg.Name < out[j].cfg.Name })
	return out
}

// DeleteTimeout bounds how long Delete waits for I/O still draining from channels that
// their users already released (a namespace removed with writes in flight).
const DeleteTimeout = 30 * time.Second

// Delete removes an unclaimed bdev and closes its backend. module, when not empty,
// must match, so that bdev_null_delete cannot delete a file bdev. It waits for channels
// whose last users left with I/O in flight, up to ctx's deadline or DeleteTimeout; if
// they do not drain in time the delete fails and the bdev stays as it was, listed and
// usable, so that a later call can retry: a bdev is never half deleted.
func (m *Manager) Delete(ctx context.Context, name, module string) error {
	m.mu.Lock()
	b := m.bdevs[name]
	if b == nil || (module != "" && b.cfg.Module != module) {
		m.mu.Unlock()
		return fmt.Errorf("%s bdev %q: %w", module, name, ErrNotFound)
	}
	drained, err := b.beginDelete()
	m.mu.Unlock()
	if err != nil {
		return err
	}
	if drained != nil {
		ctx, cancel := context.WithTimeout(ctx, DeleteTimeout)
		defer cancel()
		select {
		case <-drained:
		case <-ctx.Done():
			b.cancelDelete()
			return fmt.Errorf("bdev %q: %d channels still have I/O in flight: %w",
				name, b.OpenChannels(), ErrClaimed)
		}
	}
	m.mu.Lock()
	delete(m.bdevs, name)
	m.mu.Unlock()
	return b.closeBackend()
}

// CloseAll closes every bdev, layers before the bdevs they stand on, for daemon
// shutdown after the reactors stopped. A bdev with channels still open (a connection
// that did not drain in time) is reported and left open: the process is exiting, and
// closing a backend under a channel would be a use after free.
func (m *Manager) CloseAll() error {
	var first error
	bs := m.List()
	sort.SliceStable(bs, func(i, j int) bool { return bs[i].depth() > bs[j].depth() })
	for _, b := range bs {
		m.mu.Lock()
		delete(m.bdevs, b.cfg.Name)
		m.mu.Unlock()
		if err := b.closeBackend(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
