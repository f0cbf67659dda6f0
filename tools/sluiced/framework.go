package main

import (
	"context"
	"fmt"

	"sluice/engine/mem"
	"sluice/engine/reactor"
	"sluice/engine/rpc"
)

// CoreParams name one reactor's allocator core.
type CoreParams struct {
	Core int `json:"core"`
}

// SetWeightsParams are mem_set_weights' parameters.
type SetWeightsParams struct {
	Core    int         `json:"core"`
	Weights mem.Weights `json:"weights" rpc:"required"`
}

// registerFramework registers the methods that describe the daemon's own machinery:
// reactors and memory. The reactor and mem packages sit below the RPC layer, so their
// methods are wired here.
func registerFramework(reg *rpc.Registry, g *reactor.Group, d *mem.Domain) {
	rpc.Handle(reg, "framework_get_reactors", func(context.Context, struct{}) ([]reactor.Stats, error) {
		return g.Stats(), nil
	})
	rpc.Handle(reg, "mem_get_stats", func(context.Context, struct{}) (mem.DomainStats, error) {
		return d.Stats(), nil
	})
	rpc.Handle(reg, "mem_get_weights", func(_ context.Context, p CoreParams) (mem.Weights, error) {
		w, err := d.Weights(p.Core)
		if err != nil {
			return w, fmt.Errorf("core %d: %w: %w", p.Core, rpc.ErrNotFound, err)
		}
		return w, nil
	})
	// The core applies new weights at its next reclaim (within a housekeeping
	// period), on its own reactor: the slice choice stays lock-free.
	rpc.Handle(reg, "mem_set_weights", func(_ context.Context, p SetWeightsParams) (bool, error) {
		if err := d.SetWeights(p.Core, p.Weights); err != nil {
			return false, fmt.Errorf("core %d: %w: %w", p.Core, rpc.ErrInvalid, err)
		}
		return true, nil
	})
}
