package reactor

import (
	"math/rand/v2"
	"sync"
	"testing"
)

// intRing is what the model test needs of both rings.
type intRing interface {
	Push(int) bool
	Pop() (int, bool)
	Cap() int
}

// TestRingModels drives random pushes and pops on each ring against a slice model,
// checking capacity, FIFO order and emptiness after every step.
func TestRingModels(t *testing.T) {
	for name, mk := range map[string]func(size int) intRing{
		"spsc": func(n int) intRing { return NewSPSC[int](n) },
		"mpsc": func(n int) intRing { return NewMPSC[int](n) },
	} {
		for seed := uint64(1); seed <= 20; seed++ {
			rng := rand.New(rand.NewPCG(seed, 0))
			r := mk(1 << (1 + rng.IntN(6)))
			var model []int
			next := 0
			for step := 0; step < 5000; step++ {
				if rng.IntN(2) == 0 {
					ok := r.Push(next)
					if ok != (len(model) < r.Cap()) {
						t.Fatalf("%s seed %d step %d: push ok=%v with %d/%d queued", name, seed, step, ok, len(model), r.Cap())
					}
					if ok {
						model = append(model, next)
					}
					next++
					continue
				}
				v, ok := r.Pop()
				if ok != (len(model) > 0) {
					t.Fatalf("%s seed %d step %d: pop ok=%v with %d queued", name, seed, step, ok, len(model))
				}
				if ok && v != model[0] {
					t.Fatalf("%s seed %d step %d: pop %d, want %d", name, seed, step, v, model[0])
				}
				if ok {
					model = model[1:]
				}
				switch r := r.(type) {
				case *SPSC[int]:
					if r.Len() != len(model) {
						t.Fatalf("spsc seed %d step %d: Len %d, want %d", seed, step, r.Len(), len(model))
					}
				case *MPSC[int]:
					if r.Empty() != (len(model) == 0) {
						t.Fatalf("mpsc seed %d step %d: Empty %v with %d queued", seed, step, r.Empty(), len(model))
					}
				}
			}
		}
	}
}

// TestSPSCConcurrent checks order and completeness across two goroutines; run it
// under -race to check the publication protocol.
func TestSPSCConcurrent(t *testing.T) {
	const n = 200000
	r := NewSPSC[*int](64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			v := i
			for !r.Push(&v) {
			}
		}
	}()
	for want := 0; want < n; {
		p, ok := r.Pop()
		if !ok {
			continue
		}
		if *p != want {
			t.Fatalf("got %d, want %d", *p, want)
		}
		want++
	}
	<-done
	if _, ok := r.Pop(); ok {
		t.Fatal("ring not empty after all items popped")
	}
}

// TestMPSCConcurrent checks that no item is lost or duplicated and that each
// producer's items come out in the order it pushed them.
func TestMPSCConcurrent(t *testing.T) {
	const producers, perProducer = 4, 50000
	type item struct{ p, seq int }
	r := NewMPSC[*item](128)
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < perProducer; i++ {
				it := &item{p, i}
				for !r.Push(it) {
				}
			}
		}(p)
	}
	next := make([]int, producers)
	for got := 0; got < producers*perProducer; {
		it, ok := r.Pop()
		if !ok {
			continue
		}
		if it.seq != next[it.p] {
			t.Fatalf("producer %d: got seq %d, want %d", it.p, it.seq, next[it.p])
		}
		next[it.p]++
		got++
	}
	wg.Wait()
	if !r.Empty() {
		t.Fatal("ring not empty after all items popped")
	}
}

func TestRingSizeMustBePow2(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewSPSC(3) did not panic")
		}
	}()
	NewSPSC[int](3)
}

func TestRingsAllocateNothing(t *testing.T) {
	s := NewSPSC[Msg](8)
	m := NewMPSC[Msg](8)
	fn := func(any) {}
	arg := new(int)
	if n := testing.AllocsPerRun(1000, func() {
		s.Push(Msg{fn, arg})
		s.Pop()
		m.Push(Msg{fn, arg})
		m.Pop()
	}); n != 0 {
		t.Fatalf("ring push/pop allocates %v per run", n)
	}
}

func BenchmarkSPSC(b *testing.B) {
	r := NewSPSC[int](1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < b.N; {
			if _, ok := r.Pop(); ok {
				i++
			}
		}
	}()
	for i := 0; i < b.N; i++ {
		for !r.Push(i) {
		}
	}
	<-done
}

func BenchmarkMPSC(b *testing.B) {
	r := NewMPSC[int](1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < b.N; {
			if _, ok := r.Pop(); ok {
				i++
			}
		}
	}()
	for i := 0; i < b.N; i++ {
		for !r.Push(i) {
		}
	}
	<-done
}
