package mem

import "testing"

func TestSmoke(t *testing.T) {
	d := newTestDomain(t, DomainConfig{})
	c := newTestCore(t, d, 0)
	var bufs []Buf
	for _, size := range []int{1, 64, 65, 200, 4096, 5000, 128 << 10, 256 << 10, 300 << 10, 2 << 20, 3 << 20} {
		b, err := c.Alloc(size)
		if err != nil {
			t.Fatalf("Alloc(%d): %v", size, err)
		}
		if got := len(b.Bytes()); got != size {
			t.Fatalf("Alloc(%d): len %d", size, got)
		}
		clear(b.Bytes())
		bufs = append(bufs, b)
		if err := d.checkConsistency(); err != nil {
			t.Fatalf("after Alloc(%d): %v", size, err)
		}
	}
	for _, b := range bufs {
		c.Free(b)
		if err := d.checkConsistency(); err != nil {
			t.Fatalf("after Free(%v): %v", b, err)
		}
	}
}
