package group

import (
	"context"
	"errors"
	"fmt"
)

// Create names this standalone node's group: it becomes a group of one, keeping its
// reservation state, with no BGL until a member joins (so persistent commands are refused
// until then: DESIGN.md, "with a group configured and no BGL available").
func (n *Node) Create(ctx context.Context, name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("create group %q: name must be 1 to %d bytes: %w", name, maxNameLen, ErrInvalid)
	}
	_, err := n.call(ctx, "create group", func(c *core, id EntryID, done func(Reply)) {
		switch {
		case !c.standalone():
			done(replyOf(fmt.Errorf("node is in group %q: %w", c.groupName(), ErrExists)))
		case !c.isLeader():
			done(replyOf(ErrNotReady))
		default:
			p := &proposal{req: Request{ID: id}, local: done}
			c.props = append(c.props, p)
			c.propByID[id] = p
			c.propose(p, Entry{Kind: EntryName, Name: name})
		}
	})
	return err
}

// groupName is the group this node is in or entering.
func (c *core) groupName() string {
	if c.st.name != "" {
		return c.st.name
	}
	return c.invited
}

// Join makes this standalone node a member of the group that the node at peerAddr
// belongs to: the group leader adds it as a learner and invites it; it wipes its
// (empty) standalone state, receives the leader's snapshot and is promoted to voter once
// caught up. Join returns then. A node that holds reservation state cannot join
// (ErrNotEmpty): clear it first.
func (n *Node) Join(ctx context.Context, peerAddr string) error {
	_, err := n.call(ctx, "join group", func(c *core, id EntryID, done func(Reply)) {
		switch {
		case !c.standalone():
			done(replyOf(fmt.Errorf("node is in group %q: %w", c.groupName(), ErrExists)))
		case c.hasReservations():
			done(replyOf(ErrNotEmpty))
		default:
			q := Request{ID: id, Op: OpAddMember, Node: c.n.id, Addr: c.n.cfg.PeerAddr,
				ReplyTo: c.n.id, ReplyAddr: c.n.cfg.PeerAddr}
			c.forward(q, func(r Reply) {
				if r.Code == CodeOK && c.standalone() {
					c.enterGroup(r.Group)
				}
				done(r)
			}, peerAddr, c.n.loop.Now().Add(10*c.n.cfg.election()))
		}
	})
	if err != nil {
		return err
	}
	return n.awaitVoter(ctx)
}

// awaitVoter waits until this node votes in its group.
func (n *Node) awaitVoter(ctx context.Context) error {
	_, err := n.call(ctx, "join group: wait to become a voter", func(c *core, id EntryID, done func(Reply)) {
		c.watches = append(c.watches, &watch{id: id, cond: func() bool { return c.st.isVoter(c.n.id) },
			done: func(err error) { done(replyOf(err)) }})
	})
	return err
}

// Leave removes this node from its group; it then starts again as a standalone node
// with no reservation state. The last voter of a group cannot leave.
func (n *Node) Leave(ctx context.Context) error {
	_, err := n.call(ctx, "leave group", func(c *core, id EntryID, done func(Reply)) {
		if c.standalone() {
			done(replyOf(ErrStandalone))
			return
		}
		c.request(Request{Op: OpRemoveMember, Node: c.n.id}, id, func(r Reply) {
			if r.Code == CodeOK && !c.standalone() {
				c.becomeStandalone()
			}
			done(r)
		})
	})
	return err
}

// AddMember adds node id at peer address addr to the group as a learner and invites it;
// the node must be running standalone with no reservation state. It becomes a voter
// once caught up.
func (n *Node) AddMember(ctx context.Context, id uint64, addr string) error {
	_, err := n.call(ctx, "add member", func(c *core, rid EntryID, done func(Reply)) {
		c.request(Request{Op: OpAddMember, Node: id, Addr: addr}, rid, done)
	})
	return err
}

// RemoveMember removes node id from the group (a failed node, say). A removed BGL is
// replaced by the leader with a synchronized member.
func (n *Node) RemoveMember(ctx context.Context, id uint64) error {
	_, err := n.call(ctx, "remove member", func(c *core, rid EntryID, done func(Reply)) {
		c.request(Request{Op: OpRemoveMember, Node: id}, rid, done)
	})
	return err
}

// ReplaceMember replaces failed member old with node newID at newAddr: old is removed
// first (so the quorum does not grow to include a dead node), then newID is added and
// invited (AddMember).
func (n *Node) ReplaceMember(ctx context.Context, old, newID uint64, newAddr string) error {
	if err := n.RemoveMember(ctx, old); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("replace member %d: %w", old, err)
	}
	if err := n.AddMember(ctx, newID, newAddr); err != nil {
		return fmt.Errorf("replace member %d: %w", old, err)
	}
	return nil
}

// DesignateBGL makes voting member id the backup group leader.
func (n *Node) DesignateBGL(ctx context.Context, id uint64) error {
	_, err := n.call(ctx, "designate bgl", func(c *core, rid EntryID, done func(Reply)) {
		c.request(Request{Op: OpDesignate, Node: id}, rid, done)
	})
	return err
}
