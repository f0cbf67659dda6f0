package mem

import (
	"encoding/json"
	"regexp"
	"testing"
)

// TestStatsJSON: the mem_get_stats payload marshals with snake_case keys and reports the
// per-class figures of what the core holds.
func TestStatsJSON(t *testing.T) {
	d := newTestDomain(t, DomainConfig{SizeBytes: 8 << 20})
	c := newTestCore(t, d, 3)
	a, b := mustAlloc(t, c, 100), mustAlloc(t, c, 5000)
	defer c.Free(a)
	defer c.Free(b)
	c.PublishStats()
	st := d.Stats()
	raw, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if !snake.MatchString(k) {
					t.Errorf("key %q is not snake_case", k)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(generic)
	cs := st.Cores[0]
	if cs.Core != 3 || len(cs.Classes) != 2 || cs.PagesHeld != 1 {
		t.Fatalf("core stats: %+v", cs)
	}
	small := cs.Classes[0]
	if small.Class != "128" || small.ObjectsInUse != 1 || small.BytesInUse != 128 || small.PartialSlices != 1 || small.BytesReserved != SliceSize {
		t.Fatalf("class stats: %+v", small)
	}
	if cs.BytesInUse != 128+8192 || cs.BytesReserved != PageSize {
		t.Fatalf("core bytes: in use %d reserved %d", cs.BytesInUse, cs.BytesReserved)
	}
}
