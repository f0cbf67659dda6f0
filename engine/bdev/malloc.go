package bdev

import (
	"fmt"

	"golang.org/x/sys/unix"

	"sluice/engine/reactor"
)

// MallocParams are bdev_malloc_create's parameters.
type MallocParams struct {
	Name      string `json:"name" rpc:"required"`
	NumBlocks uint64 `json:"num_blocks" rpc:"required"`
	BlockSize uint32 `json:"block_size" rpc:"required"`
	UUID      string `json:"uuid,omitempty"`
}

// maxMallocBytes bounds a RAM disk so that a typo in an RPC cannot take the machine's
// memory.
const maxMallocBytes = 64 << 30

// RegionAllocator supplies the memory of a RAM disk. The daemon passes the hugepage
// allocator; nil falls back to an anonymous mapping.
type RegionAllocator interface {
	AllocRegion(size int) (mem []byte, free func(), err error)
}

// CreateMalloc registers a RAM disk: contents live off the Go heap and are lost when
// the daemon stops. New memory reads as zeros.
func CreateMalloc(m *Manager, p MallocParams, ra RegionAllocator) (*Bdev, error) {
	u, err := parseOptionalUUID(p.UUID)
	if err != nil {
		return nil, fmt.Errorf("bdev_malloc_create %q: %w", p.Name, err)
	}
	size := p.NumBlocks * uint64(p.BlockSize)
	if p.NumBlocks == 0 || p.BlockSize == 0 || size/uint64(p.BlockSize) != p.NumBlocks || size > maxMallocBytes {
		return nil, fmt.Errorf("bdev_malloc_create %q: size %d blocks of %d bytes not in (0, %d]: %w",
			p.Name, p.NumBlocks, p.BlockSize, uint64(maxMallocBytes), ErrInvalid)
	}
	var be *mallocBackend
	if ra != nil {
		mem, free, err := ra.AllocRegion(int(size))
		if err != nil {
			// The allocator's own error says why; the sentinel gives the RPC code.
			return nil, fmt.Errorf("bdev_malloc_create %q: %w: %w", p.Name, ErrNoMemory, err)
		}
		be = &mallocBackend{mem: mem, free: free}
	} else {
		mem, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
		if err != nil {
			return nil, fmt.Errorf("bdev_malloc_create %q: map %d bytes: %w", p.Name, size, err)
		}
		be = &mallocBackend{mem: mem, free: func() { _ = unix.Munmap(mem) }}
	}
	return m.Register(Config{
		Name: p.Name, Module: "malloc", BlockSize: p.BlockSize, NumBlocks: p.NumBlocks, UUID: u,
		Caps:   Caps{WriteZeroes: true, Unmap: true, UnmapReadsZero: true},
		Params: p,
	}, be)
}

type mallocBackend struct {
	mem  []byte
	free func()
}

func (b *mallocBackend) NewChannel(*reactor.Reactor) (BackendChannel, error) {
	return mallocChannel{mem: b.mem}, nil
}

func (b *mallocBackend) Close() error {
	b.free()
	b.mem = nil
	return nil
}

type mallocChannel struct{ mem []byte }

func (c mallocChannel) Submit(io *IO) {
	region := c.mem[io.Offset : io.Offset+io.Length]
	switch io.Type {
	case IORead:
		copy(io.Buf, region)
	case IOWrite:
		copy(region, io.Buf)
	case IOWriteZeroes, IOUnmap:
		clear(region)
	}
	io.Complete(StatusSuccess)
}

func (mallocChannel) Close() {}
