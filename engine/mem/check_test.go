package mem

import (
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"testing"
)

// newTestDomain maps a small domain on ordinary pages (fast, no reservation) unless the
// config asks otherwise, and closes it when the test ends, failing on leaks.
func newTestDomain(tb testing.TB, cfg DomainConfig) *Domain {
	tb.Helper()
	if cfg.SizeBytes == 0 {
		cfg.SizeBytes = 16 << 20
	}
	if cfg.Hugepages == HugepagesPrefer {
		cfg.Hugepages = HugepagesNever
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	d, err := NewDomain(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := d.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return d
}

func newTestCore(tb testing.TB, d *Domain, id int) *Core {
	tb.Helper()
	c, err := d.NewCore(id)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// checkConsistency recomputes every core's counters, lists and page bookkeeping from the
// slices' bitmaps and compares. It is the property test's oracle for "state counters
// match the slices' real occupancy".
//
// Preconditions: no core runs concurrently.
func (d *Domain) checkConsistency() error {
	type tally struct {
		counts [numRows][numStates]int32
		inUse  [numRows]int64
		clean  int32
		spare  int32
		pages  int32
	}
	var cores []*Core
	for _, c := range d.cores {
		if c != nil {
			cores = append(cores, c)
		}
	}
	got := make(map[int32]*tally)
	for _, c := range cores {
		got[c.idx] = &tally{}
	}
	for pg := range d.npages {
		owner := d.pageOwner[pg]
		var busy, retained int16
		for i := pg * slicesPerPage; i < (pg+1)*slicesPerPage; i++ {
			sl := &d.slices[i]
			if err := sl.checkBitmap(); err != nil {
				return fmt.Errorf("slice %d: %w", i, err)
			}
			if owner < 0 {
				if sl.where != inPool {
					return fmt.Errorf("slice %d of unlent page %d is in place %d", i, pg, sl.where)
				}
				continue
			}
			t := got[owner]
			row := min(int(sl.cls), clsSpan)
			switch sl.where {
			case inCurrent, inPartial, inFull, inExhausted:
				busy++
				want := sl.occupancyState()
				if sl.where != inCurrent && want == SliceStateDirty {
					return fmt.Errorf("slice %d is empty but on list %d", i, sl.where)
				}
				if sl.state != want {
					return fmt.Errorf("slice %d: state %v, occupancy says %v", i, sl.state, want)
				}
				if sl.where == inPartial && sl.state != SliceStatePartial ||
					sl.where == inFull && (sl.state != SliceStateFull || sl.nfree == 0) ||
					sl.where == inExhausted && sl.nfree != 0 {
					return fmt.Errorf("slice %d: state %v on list %d", i, sl.state, sl.where)
				}
				t.counts[row][sl.state]++
				t.inUse[row] += int64(sl.live())
			case inSpan:
				busy++
				if sl.state != SliceStateFull {
					return fmt.Errorf("span slice %d: state %v", i, sl.state)
				}
				t.counts[clsSpan][SliceStateFull]++
				if sl.span > 0 {
					t.inUse[clsSpan]++
				}
			case inDirty, inSpare:
				if sl.state != SliceStateDirty || sl.cls == clsNone {
					return fmt.Errorf("slice %d in place %d: state %v class %d", i, sl.where, sl.state, sl.cls)
				}
				if sl.cls < numClasses && sl.nfree != sl.nobj {
					return fmt.Errorf("dirty slice %d has %d live objects", i, sl.live())
				}
				t.counts[row][SliceStateDirty]++
				if sl.where == inDirty {
					retained++
				} else {
					t.spare++
				}
			case inClean:
				if sl.state != SliceStateClean || sl.cls != clsNone {
					return fmt.Errorf("clean slice %d: state %v class %d", i, sl.state, sl.cls)
				}
				t.clean++
			default:
				return fmt.Errorf("slice %d of page %d (core %d) is in place %d", i, pg, owner, sl.where)
			}
		}
		if owner < 0 {
			continue
		}
		got[owner].pages++
		p := d.pages[pg]
		if p.busy != busy || p.retained != retained {
			return fmt.Errorf("page %d: busy %d retained %d, slices say %d and %d", pg, p.busy, p.retained, busy, retained)
		}
		if busy == 0 && retained == 0 {
			return fmt.Errorf("page %d held by core %d with no slice in use or retained (footprint policy)", pg, owner)
		}
	}
	for _, c := range cores {
		t := got[c.idx]
		if err := c.checkLists(); err != nil {
			return fmt.Errorf("core %d: %w", c.id, err)
		}
		if t.pages != c.pages || t.clean != c.cleanN || t.spare != c.spare.n {
			return fmt.Errorf("core %d: pages/clean/spare %d/%d/%d, slices say %d/%d/%d",
				c.id, c.pages, c.cleanN, c.spare.n, t.pages, t.clean, t.spare)
		}
		for r := range c.rows {
			if c.rows[r].counts != t.counts[r] {
				return fmt.Errorf("core %d class %s: counts %v, slices say %v", c.id, rowName(r), c.rows[r].counts, t.counts[r])
			}
			if c.rows[r].inUse != t.inUse[r] {
				return fmt.Errorf("core %d class %s: in use %d, slices say %d", c.id, rowName(r), c.rows[r].inUse, t.inUse[r])
			}
			if r < numClasses && int(c.rows[r].dirty.n) > d.maxDirty {
				return fmt.Errorf("core %d class %s: %d retained dirty slices > policy %d", c.id, rowName(r), c.rows[r].dirty.n, d.maxDirty)
			}
		}
	}
	return nil
}

func (s *slice) checkBitmap() error {
	if s.where == inPool || s.where == inClean || s.where == inSpan || s.cls >= numClasses {
		return nil
	}
	n := 0
	for w, word := range s.free {
		n += bits.OnesCount64(word)
		if hi := int(s.nobj) - w*64; hi < 64 && word>>max(hi, 0) != 0 {
			return fmt.Errorf("free bits beyond nobj %d", s.nobj)
		}
		if w < int(s.hint) && word != 0 {
			return fmt.Errorf("free bit below hint %d", s.hint)
		}
	}
	if n != int(s.nfree) {
		return fmt.Errorf("nfree %d, bitmap has %d", s.nfree, n)
	}
	return nil
}

func (c *Core) checkLists() error {
	d := c.d
	check := func(name string, l *list, where uint8, cls int) error {
		n, prev := int32(0), int32(-1)
		for i := l.head; i >= 0; i = d.slices[i].next {
			sl := &d.slices[i]
			if sl.where != where || sl.prev != prev || d.pageOwner[i/slicesPerPage] != c.idx {
				return fmt.Errorf("list %s: slice %d misplaced (where %d prev %d)", name, i, sl.where, sl.prev)
			}
			if cls >= 0 && int(sl.cls) != cls {
				return fmt.Errorf("list %s: slice %d has class %d", name, i, sl.cls)
			}
			prev = i
			if n++; n > int32(len(d.slices)) {
				return fmt.Errorf("list %s: cycle", name)
			}
		}
		if n != l.n {
			return fmt.Errorf("list %s: length %d, count %d", name, n, l.n)
		}
		return nil
	}
	for cls := range c.rows {
		r := &c.rows[cls]
		for _, l := range []struct {
			name  string
			l     *list
			where uint8
		}{{"partial", &r.partial, inPartial}, {"full", &r.full, inFull}, {"exhausted", &r.exhausted, inExhausted}, {"dirty", &r.dirty, inDirty}} {
			if err := check(rowName(cls)+"/"+l.name, l.l, l.where, cls); err != nil {
				return err
			}
		}
		if r.cur >= 0 && (d.slices[r.cur].where != inCurrent || int(d.slices[r.cur].cls) != cls) {
			return fmt.Errorf("class %s: current slice %d misplaced", rowName(cls), r.cur)
		}
	}
	if err := check("spare", &c.spare, inSpare, -1); err != nil {
		return err
	}
	return check("clean", &c.clean, inClean, -1)
}
