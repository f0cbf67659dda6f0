package main

import (
	"context"

	"sluice/engine/mem"
	"sluice/engine/reactor"
	"sluice/engine/rpc"
)

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
}
