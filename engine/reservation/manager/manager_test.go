package manager_test

import (
	"errors"
	"testing"
	"time"

	"sluice/engine/proto/nvme"
	"sluice/engine/reactor"
	"sluice/engine/reservation"
	"sluice/engine/reservation/manager"
	"sluice/engine/reservation/manager/managertest"
)

func startReactor(t *testing.T) *reactor.Reactor {
	t.Helper()
	r, err := reactor.New(reactor.Config{Core: -1, Mode: reactor.ModeAdaptive})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

type answer struct {
	res  reservation.Result
	err  error
	view *reservation.View
}

// TestAnswerComesAfterPublication: when a host hears its command succeeded, every
// reactor's next check sees the new snapshot; answers run on the submitting reactor.
func TestAnswerComesAfterPublication(t *testing.T) {
	r := startReactor(t)
	d := managertest.New()
	m := manager.New(manager.Config{Decider: d, Reactors: []*reactor.Reactor{r}})
	defer m.Close()
	vol := m.Volume([16]byte{1})
	if vol.View() != nil {
		t.Fatal("a volume without reservations has a snapshot to check")
	}
	host := reservation.NVMeHost([16]byte{9})
	got := make(chan answer, 2)
	submit := func(cmd reservation.Command) {
		_ = r.Post(func() {
			m.Submit(r, vol, cmd, func(res reservation.Result, err error) {
				got <- answer{res, err, vol.View()}
			})
		})
	}
	submit(reservation.Command{Action: reservation.NVMeRegister, From: host, ServiceKey: 5})
	submit(reservation.Command{Action: reservation.NVMeAcquire, From: host, Key: 5,
		Type: reservation.ExclusiveAccess})
	for i := 0; i < 2; i++ {
		a := <-got
		if a.err != nil || a.res.Status != reservation.StatusOK {
			t.Fatalf("command %d: %v %v", i, a.res.Status, a.err)
		}
		if i == 1 && (a.view == nil || a.view.Allows(reservation.NVMeHost([16]byte{8}), reservation.AccessRead)) {
			t.Fatal("the acquire was answered before its snapshot fenced other hosts")
		}
	}
	if st := vol.State(); st.Type != reservation.ExclusiveAccess || len(st.Registrants) != 1 {
		t.Fatalf("state %+v", st)
	}
}

func TestRetryableRefusal(t *testing.T) {
	r := startReactor(t)
	d := managertest.New()
	d.SetRefusePersistent(true)
	m := manager.New(manager.Config{Decider: d, Reactors: []*reactor.Reactor{r}})
	defer m.Close()
	vol := m.Volume([16]byte{2})
	got := make(chan error, 1)
	_ = r.Post(func() {
		m.Submit(r, vol, reservation.Command{Action: reservation.NVMeRegister, From: reservation.NVMeHost([16]byte{1}),
			ServiceKey: 1, CPTPL: nvme.CPTPLSet}, func(_ reservation.Result, err error) { got <- err })
	})
	select {
	case err := <-got:
		if !errors.Is(err, manager.ErrRetryable) {
			t.Fatalf("refusal %v, want retryable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer")
	}
	if st := m.Stats(); st.Retryable != 1 || st.Submitted != 1 {
		t.Fatalf("stats %+v", st)
	}
}
