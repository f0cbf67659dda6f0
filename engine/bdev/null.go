package bdev

import (
	"fmt"

	"sluice/engine/reactor"
)

// NullParams are bdev_null_create's parameters.
type NullParams struct {
	Name      string `json:"name" rpc:"required"`
	NumBlocks uint64 `json:"num_blocks" rpc:"required"`
	BlockSize uint32 `json:"block_size" rpc:"required"`
	UUID      string `json:"uuid,omitempty"`
}

// CreateNull registers a bdev that completes every I/O at once without touching data:
// reads leave the buffer as it is. It measures the protocol stack alone.
func CreateNull(m *Manager, p NullParams) (*Bdev, error) {
	u, err := parseOptionalUUID(p.UUID)
	if err != nil {
		return nil, fmt.Errorf("bdev_null_create %q: %w", p.Name, err)
	}
	return m.Register(Config{
		Name: p.Name, Module: "null", BlockSize: p.BlockSize, NumBlocks: p.NumBlocks, UUID: u,
		Caps:   Caps{WriteZeroes: true, Unmap: true},
		Params: p,
	}, nullBackend{})
}

type nullBackend struct{}

func (nullBackend) NewChannel(*reactor.Reactor) (BackendChannel, error) { return nullChannel{}, nil }
func (nullBackend) Close() error                                        { return nil }

type nullChannel struct{}

func (nullChannel) Submit(io *IO) { io.Complete(StatusSuccess) }
func (nullChannel) Close()        {}
