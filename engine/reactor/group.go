package reactor

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Group is the set of reactors of one daemon, one per core of the core mask.
type Group struct {
	reactors []*Reactor
}

// GroupConfig describes a reactor group.
type GroupConfig struct {
	Cores    []int
	Mode     Mode
	IdleSpin time.Duration
	RingSize int
}

// StartGroup makes and starts one reactor per core. On error the reactors already
// started are stopped.
func StartGroup(cfg GroupConfig) (*Group, error) {
	if len(cfg.Cores) == 0 {
		return nil, fmt.Errorf("reactor group: empty core list")
	}
	g := &Group{}
	for i, core := range cfg.Cores {
		r, err := New(Config{ID: i, Core: core, Mode: cfg.Mode, IdleSpin: cfg.IdleSpin, RingSize: cfg.RingSize})
		if err == nil {
			err = r.Start()
		}
		if err != nil {
			g.Stop()
			return nil, err
		}
		g.reactors = append(g.reactors, r)
	}
	return g, nil
}

// Reactors lists the group's reactors in core-mask order.
func (g *Group) Reactors() []*Reactor { return g.reactors }

// Reactor returns reactor i.
func (g *Group) Reactor(i int) *Reactor { return g.reactors[i] }

// Len is the number of reactors.
func (g *Group) Len() int { return len(g.reactors) }

// Stop stops every reactor.
func (g *Group) Stop() {
	for _, r := range g.reactors {
		r.Stop()
	}
}

// Stats snapshots every reactor's counters.
func (g *Group) Stats() []Stats {
	out := make([]Stats, len(g.reactors))
	for i, r := range g.reactors {
		out[i] = r.Stats()
	}
	return out
}

// ParseCores parses a core list such as "0", "0-3", "0,2,4-5" or a hex mask "0x3".
func ParseCores(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("core list is empty")
	}
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		mask, err := strconv.ParseUint(s[2:], 16, 64)
		if err != nil || mask == 0 {
			return nil, fmt.Errorf("core mask %q: want a nonzero hex mask", s)
		}
		var cores []int
		for i := 0; i < 64; i++ {
			if mask&(1<<i) != 0 {
				cores = append(cores, i)
			}
		}
		return cores, nil
	}
	seen := map[int]bool{}
	var cores []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(strings.TrimSpace(lo))
		if err != nil || a < 0 {
			return nil, fmt.Errorf("core list %q: bad core %q", s, lo)
		}
		b := a
		if isRange {
			b, err = strconv.Atoi(strings.TrimSpace(hi))
			if err != nil || b < a {
				return nil, fmt.Errorf("core list %q: bad range %q", s, part)
			}
		}
		for c := a; c <= b; c++ {
			if seen[c] {
				return nil, fmt.Errorf("core list %q: core %d listed twice", s, c)
			}
			seen[c] = true
			cores = append(cores, c)
		}
	}
	return cores, nil
}
