package bdev

import (
	"context"
	"sort"

	"sluice/engine/rpc"
)

// Info is bdev_get_bdevs' view of a bdev (SPDK's field names where they exist).
type Info struct {
	Name             string          `json:"name"`
	ProductName      string          `json:"product_name"`
	Module           string          `json:"module"`
	BlockSize        uint32          `json:"block_size"`
	NumBlocks        uint64          `json:"num_blocks"`
	UUID             string          `json:"uuid"`
	Claimed          bool            `json:"claimed"`
	ClaimedBy        string          `json:"claimed_by,omitempty"`
	SupportedIOTypes map[string]bool `json:"supported_io_types"`
	Params           any             `json:"driver_specific,omitempty"`
}

// Describe returns the bdev's Info.
func (b *Bdev) Describe() Info {
	owner := b.ClaimedBy()
	in := Info{Name: b.Name(), ProductName: productNames[b.Module()], Module: b.Module(),
		BlockSize: b.BlockSize(), NumBlocks: b.NumBlocks(), UUID: FormatUUID(b.UUID()),
		Claimed: owner != "", ClaimedBy: owner, SupportedIOTypes: map[string]bool{}, Params: b.Params()}
	for t := IORead; t < numIOTypes; t++ {
		in.SupportedIOTypes[t.String()] = b.Supports(t)
	}
	in.SupportedIOTypes["fua"] = b.Caps().FUA
	return in
}

var productNames = map[string]string{"null": "Null disk", "malloc": "Malloc disk", "file": "File disk",
	"delay": "delay", "error": "Error disk", "crypt": "Encrypted disk (AES-XTS)"}

// NameParams name one bdev.
type NameParams struct {
	Name string `json:"name" rpc:"required"`
}

// OptionalNameParams filter by name when given.
type OptionalNameParams struct {
	Name string `json:"name,omitempty"`
}

// IOStatResult is bdev_get_iostat's result.
type IOStatResult struct {
	Bdevs []IOStat `json:"bdevs"`
}

// RegisterRPC registers the bdev methods and the "bdev" config section. ra supplies
// RAM-disk memory (nil: anonymous mappings).
func RegisterRPC(reg *rpc.Registry, m *Manager, ra RegionAllocator) {
	rpc.Handle(reg, "bdev_null_create", func(_ context.Context, p NullParams) (string, error) {
		b, err := CreateNull(m, p)
		if err != nil {
			return "", err
		}
		return b.Name(), nil
	})
	rpc.Handle(reg, "bdev_malloc_create", func(_ context.Context, p MallocParams) (string, error) {
		b, err := CreateMalloc(m, p, ra)
		if err != nil {
			return "", err
		}
		return b.Name(), nil
	})
	rpc.Handle(reg, "bdev_file_create", func(_ context.Context, p FileParams) (string, error) {
		b, err := CreateFile(m, p)
		if err != nil {
			return "", err
		}
		return b.Name(), nil
	})
	rpc.Handle(reg, "bdev_delay_create", func(_ context.Context, p DelayParams) (string, error) {
		b, err := CreateDelay(m, p)
		if err != nil {
			return "", err
		}
		return b.Name(), nil
	})
	rpc.Handle(reg, "bdev_error_create", func(_ context.Context, p ErrorParams) (string, error) {
		b, err := CreateError(m, p)
		if err != nil {
			return "", err
		}
		return b.Name(), nil
	})
	rpc.Handle(reg, "bdev_error_inject_error", func(_ context.Context, p InjectParams) (bool, error) {
		return true, InjectError(m, p)
	})
	for _, module := range []string{"null", "malloc", "file", "delay", "error"} {
		module := module
		rpc.Handle(reg, "bdev_"+module+"_delete", func(ctx context.Context, p NameParams) (bool, error) {
			return true, m.Delete(ctx, p.Name, module)
		})
	}
	rpc.Handle(reg, "bdev_get_bdevs", func(_ context.Context, p OptionalNameParams) ([]Info, error) {
		if p.Name != "" {
			b, err := m.Get(p.Name)
			if err != nil {
				return nil, err
			}
			return []Info{b.Describe()}, nil
		}
		out := []Info{}
		for _, b := range m.List() {
			out = append(out, b.Describe())
		}
		return out, nil
	})
	rpc.Handle(reg, "bdev_get_iostat", func(_ context.Context, p OptionalNameParams) (IOStatResult, error) {
		res := IOStatResult{Bdevs: []IOStat{}}
		if p.Name != "" {
			b, err := m.Get(p.Name)
			if err != nil {
				return res, err
			}
			res.Bdevs = append(res.Bdevs, b.IOStat())
			return res, nil
		}
		for _, b := range m.List() {
			res.Bdevs = append(res.Bdevs, b.IOStat())
		}
		return res, nil
	})
	reg.RegisterConfigSection("bdev", 10, func() ([]rpc.Call, error) {
		// Layers come after the bdevs they stand on, so that a replay finds its base.
		bs := m.List()
		sort.SliceStable(bs, func(i, j int) bool { return bs[i].depth() < bs[j].depth() })
		calls := []rpc.Call{}
		for _, b := range bs {
			c, err := rpc.NewCall("bdev_"+b.Module()+"_create", b.Params())
			if err != nil {
				return nil, err
			}
			calls = append(calls, c)
		}
		return calls, nil
	})
}
