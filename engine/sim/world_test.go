package sim

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestWorldOrder: events run in (time, posting) order; a paused host's events wait for
// resume; a killed host's never run; Wait runs the world until its channel closes.
func TestWorldOrder(t *testing.T) {
	w := NewWorld(1)
	a, b := w.NewHost(1), w.NewHost(2)
	var got []string
	a.After(2*time.Millisecond, func() { got = append(got, "a2") })
	b.After(time.Millisecond, func() { got = append(got, "b1") })
	a.Post(func() { got = append(got, "a0") })
	b.Post(func() { got = append(got, "b0") })
	stop := a.After(3*time.Millisecond, func() { got = append(got, "never") })
	if !stop() {
		t.Fatal("stop did not cancel a pending timer")
	}
	w.RunFor(5 * time.Millisecond)
	if want := []string{"a0", "b0", "b1", "a2"}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}

	got = nil
	b.pause()
	b.Post(func() { got = append(got, "b-held") })
	a.After(time.Millisecond, func() { got = append(got, "a") })
	w.RunFor(10 * time.Millisecond)
	b.resume()
	a.kill()
	a.Post(func() { got = append(got, "dead") })
	w.RunFor(time.Millisecond)
	if want := []string{"a", "b-held"}; !slices.Equal(got, want) {
		t.Fatalf("pause/kill: %v, want %v", got, want)
	}

	done := make(chan struct{})
	b.After(time.Second, func() { close(done) })
	start := w.Now()
	if err := b.Wait(context.Background(), done); err != nil || w.Now().Sub(start) != time.Second {
		t.Fatalf("wait: %v after %v", err, w.Now().Sub(start))
	}
	w.MaxWait = time.Minute
	if err := b.Wait(context.Background(), make(chan struct{})); err != ErrStuck {
		t.Fatalf("wait on nothing: %v, want ErrStuck", err)
	}
}
