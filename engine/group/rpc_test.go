package group_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"sluice/engine/group"
	"sluice/engine/rpc"
	"sluice/engine/sim"
)

// TestRPC exercises the methods on a simulated standalone node: reservation_get shows
// registrants, holder, type, generation and PTPL; reservation_clear clears; group_create
// names the group, and save_config then records the membership as a group_verify call.
func TestRPC(t *testing.T) {
	c := sim.NewCluster(t, sim.Seed(t), sim.Options{Nodes: 1})
	n := c.Node(1)
	reg := rpc.NewRegistry(rpc.RegistryOptions{})
	group.RegisterRPC(reg, n)
	ctx := context.Background()
	invoke := func(method string, params any, out any) error {
		var raw json.RawMessage
		if params != nil {
			raw, _ = json.Marshal(params)
		}
		res, err := reg.Invoke(ctx, method, raw)
		if err == nil && out != nil {
			err = json.Unmarshal(res, out)
		}
		return err
	}
	reserve(t, c, 1, volA, registerPTPL(hostX, 0xAA))
	reserve(t, c, 1, volA, acquireWE(hostX, 0xAA))
	nguid := hex.EncodeToString(volA[:])

	var info group.ReservationInfo
	if err := invoke("reservation_get", map[string]any{"nguid": nguid}, &info); err != nil {
		t.Fatal(err)
	}
	if len(info.Registrants) != 1 || info.Holder == nil || info.Holder.Key != 0xAA || !info.PTPL ||
		info.RType != 1 || info.Generation != 1 {
		t.Errorf("reservation_get: %+v", info)
	}
	if err := invoke("reservation_get", map[string]any{"nguid": "zz"}, nil); err == nil {
		t.Error("bad nguid accepted")
	}
	if err := invoke("reservation_clear", map[string]any{"nguid": nguid, "force": true}, nil); err != nil {
		t.Fatal(err)
	}
	if v, _ := n.Volume(volA); len(v.State.Registrants) != 0 || v.State.PTPL {
		t.Errorf("after reservation_clear: %+v", v.State)
	}

	var st group.Status
	if err := invoke("group_get_status", nil, &st); err != nil || !st.Standalone || st.Leader != 1 {
		t.Fatalf("group_get_status: %+v %v", st, err)
	}
	if cfg, err := reg.SaveConfig(); err != nil || strings.Contains(mustJSON(cfg), "group_verify") {
		t.Errorf("standalone save_config: %v %s", err, mustJSON(cfg))
	}
	if err := invoke("group_create", map[string]any{"name": "g9"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := invoke("group_create", map[string]any{"name": "g9"}, nil); err == nil {
		t.Error("second group_create accepted")
	}
	cfg, err := reg.SaveConfig()
	if err != nil || !strings.Contains(mustJSON(cfg), `"group_verify"`) {
		t.Fatalf("save_config: %v %s", err, mustJSON(cfg))
	}
	if err := invoke("group_verify", map[string]any{"name": "g9", "node_id": 1}, nil); err != nil {
		t.Errorf("group_verify of the node's own group: %v", err)
	}
	if err := invoke("group_verify", map[string]any{"name": "other", "node_id": 1}, nil); err == nil {
		t.Error("group_verify of another group passed")
	}
	if err := invoke("group_leave", nil, nil); err == nil {
		t.Error("the last voter left")
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestOwnerRPC: volume_set_owner names a member as a volume's owner (0 clears it) and
// refuses a node that is not a member; volume_get_owner reads it back, and
// reservation_get shows it too.
func TestOwnerRPC(t *testing.T) {
	c := sim.NewCluster(t, sim.Seed(t), sim.Options{Nodes: 1})
	n := c.Node(1)
	reg := rpc.NewRegistry(rpc.RegistryOptions{})
	group.RegisterRPC(reg, n)
	nguid := hex.EncodeToString(volB[:])
	invoke := func(method string, params any, out any) error {
		raw, _ := json.Marshal(params)
		res, err := reg.Invoke(context.Background(), method, raw)
		if err == nil && out != nil {
			err = json.Unmarshal(res, out)
		}
		return err
	}
	owner := func() uint64 {
		t.Helper()
		var o group.OwnerInfo
		if err := invoke("volume_get_owner", map[string]any{"nguid": nguid}, &o); err != nil {
			t.Fatal(err)
		}
		if o.NGUID != nguid {
			t.Errorf("volume_get_owner answered for %s, asked %s", o.NGUID, nguid)
		}
		return o.Owner
	}
	if o := owner(); o != 0 {
		t.Fatalf("owner of an unknown volume: %d", o)
	}
	if err := invoke("volume_set_owner", map[string]any{"nguid": nguid, "node_id": n.ID()}, nil); err != nil {
		t.Fatal(err)
	}
	if o := owner(); o != n.ID() {
		t.Fatalf("owner %d after volume_set_owner %d", o, n.ID())
	}
	var info group.ReservationInfo
	if err := invoke("reservation_get", map[string]any{"nguid": nguid}, &info); err != nil || info.Owner != n.ID() {
		t.Errorf("reservation_get owner %d (%v), want %d", info.Owner, err, n.ID())
	}
	err := invoke("volume_set_owner", map[string]any{"nguid": nguid, "node_id": 77}, nil)
	if !errors.Is(err, rpc.ErrInvalidParams) {
		t.Errorf("owner outside the group: %v, want invalid params", err)
	}
	if err := invoke("volume_set_owner", map[string]any{"nguid": nguid}, nil); err == nil {
		t.Error("volume_set_owner without node_id accepted")
	}
	if err := invoke("volume_set_owner", map[string]any{"nguid": nguid, "node_id": 0}, nil); err != nil {
		t.Fatal(err)
	}
	if o := owner(); o != 0 {
		t.Fatalf("owner %d after clearing", o)
	}
}
