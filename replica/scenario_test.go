package replica

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/cleavefs/cleave/internal/durable"
)

// TestScenarios replays the scenario files under testdata/ on replicas
// driven by hand (hand_test.go). Each file is a script of commands and
// the output they must produce; run with -rewrite to regenerate the
// outputs after a deliberate change, and read the diff.
//
// Commands (ids are raft ids; "node" is the one the command runs on):
//
//	config retention=N chunk=N    log retention and snapshot chunk size of nodes added later
//	add-nodes ID... [join]        new nodes with empty disks; without join they bootstrap
//	                              the group as voters, with join they wait for a snapshot
//	campaign NODE                 NODE starts an election
//	tick ID... [n=N]              one tick to each node in turn, N times over (default 1)
//	deliver ID...                 hand each node the messages queued for it, once
//	stabilize                     deliver messages and snapshots until none is queued
//	propose NODE CMD...           the commands as one batch of proposals on NODE
//	add-learner NODE ID           NODE adds ID (at addr-ID) as a learner
//	promote NODE ID               NODE makes learner ID a voter
//	remove NODE ID                NODE removes member ID
//	partition ID...               cut the listed nodes off from the others
//	heal                          undo partition
//	fork ID... group=NAME/EPOCH voters=(ID,...) [empty=(ID,...)]
//	                              stop each node, write the new group's raft state at its
//	                              applied index (ForkGroup; empty ones get none) and
//	                              restart it
//	send-frame TO from=ID group=NAME/EPOCH type=T term=N [commit=N] [index=N log-term=N]
//	                              hand TO a frame built by hand
//	crash ID                      power cut: keep only what ID had synced, then stop it
//	restart ID                    start a stopped node from its disk
//	status [ID...]                each node's role, term, leader, indexes and members
//	data [ID...]                  the commands each node's state machine applied
//	sent [ID...]                  the raft messages each node sent, and the appends
//	                              and acknowledgements it left out (dropSuperseded)
//
// Every command's output starts with what the driver saw while running
// it: messages delivered (dropped ones say why), snapshots streamed and
// proposal outcomes.
func TestScenarios(t *testing.T) {
	// Only the .txt files: testdata/fuzz holds the fuzz corpora.
	paths, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no scenario files: %v", err)
	}
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			c := newHandCluster(t)
			datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
				c.t = t
				out := runScenarioCmd(t, c, d)
				return c.take() + out
			})
		})
	}
}

// positionalIDs returns the arguments without a value as node ids.
func positionalIDs(t *testing.T, d *datadriven.TestData) []uint64 {
	var ids []uint64
	for _, a := range d.CmdArgs {
		if len(a.Vals) > 0 || a.Key == "join" {
			continue
		}
		id, err := strconv.ParseUint(a.Key, 10, 64)
		if err != nil {
			d.Fatalf(t, "%s: %q is not a node id", d.Cmd, a.Key)
		}
		ids = append(ids, id)
	}
	return ids
}

func oneID(t *testing.T, d *datadriven.TestData, ids []uint64, n int) {
	if len(ids) != n {
		d.Fatalf(t, "%s wants %d node ids, got %v", d.Cmd, n, ids)
	}
}

func scanIDs(t *testing.T, d *datadriven.TestData, key string) []uint64 {
	a, ok := d.Arg(key)
	if !ok {
		return nil
	}
	var ids []uint64
	for _, v := range a.Vals {
		id, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			d.Fatalf(t, "%s: %q is not a node id", key, v)
		}
		ids = append(ids, id)
	}
	return ids
}

func scanGroup(t *testing.T, d *datadriven.TestData) Group {
	var s string
	d.ScanArgs(t, "group", &s)
	name, epoch, ok := strings.Cut(s, "/")
	e, err := strconv.ParseUint(epoch, 10, 64)
	if !ok || err != nil {
		d.Fatalf(t, "group %q is not NAME/EPOCH", s)
	}
	return Group{Name: name, Epoch: e}
}

func runScenarioCmd(t *testing.T, c *handCluster, d *datadriven.TestData) string {
	var ids []uint64
	if d.Cmd != "propose" {
		ids = positionalIDs(t, d)
	}
	switch d.Cmd {
	case "config":
		d.MaybeScanArgs(t, "retention", &c.logRetention)
		d.MaybeScanArgs(t, "chunk", &c.snapChunk)
		return "ok\n"

	case "add-nodes":
		c.addNodes(ids, d.HasArg("join"))
		return c.describeAll(ids)

	case "campaign":
		oneID(t, d, ids, 1)
		c.campaign(ids[0])
		return "ok\n"

	case "tick":
		n := 1
		d.MaybeScanArgs(t, "n", &n)
		c.tick(ids, n)
		return "ok\n"

	case "deliver":
		for _, id := range ids {
			c.deliver(id)
		}
		return ""

	case "stabilize":
		c.stabilize()
		return ""

	case "propose":
		if len(d.CmdArgs) < 2 {
			d.Fatalf(t, "propose NODE CMD...")
		}
		id, err := strconv.ParseUint(d.CmdArgs[0].Key, 10, 64)
		if err != nil {
			d.Fatalf(t, "propose: %q is not a node id", d.CmdArgs[0].Key)
		}
		var cmds []string
		for _, a := range d.CmdArgs[1:] {
			cmds = append(cmds, a.Key)
		}
		c.propose(id, cmds...)
		return ""

	case "add-learner", "promote", "remove":
		oneID(t, d, ids, 2)
		id := ids[1]
		var call func(ctx context.Context, r *Replica) error
		switch d.Cmd {
		case "add-learner":
			call = func(ctx context.Context, r *Replica) error {
				return r.AddLearner(ctx, id, "addr-"+strconv.FormatUint(id, 10))
			}
		case "promote":
			// Promote retries while the learner is behind, on a clock
			// of its own: only call it when it will not need to.
			lag := DefaultConfig().PromoteMaxLag
			for _, m := range c.rep(ids[0]).Members() {
				if last := c.rep(ids[0]).Status().LastIndex; m.ID == id && (m.Match == 0 || m.Match+lag < last) {
					return fmt.Sprintf("not promoting: %d has match %d, leader's last index %d\n", id, m.Match, last)
				}
			}
			call = func(ctx context.Context, r *Replica) error { return r.Promote(ctx, id) }
		case "remove":
			call = func(ctx context.Context, r *Replica) error { return r.RemoveMember(ctx, id) }
		}
		if err := c.conf(ids[0], call); err != nil {
			return c.take() + fmt.Sprintf("error: %v\n", err)
		}
		return c.take() + "proposed\n"

	case "partition":
		side := ids
		c.cut = func(from, to uint64) bool { return slices.Contains(side, from) != slices.Contains(side, to) }
		return "ok\n"

	case "heal":
		c.cut = nil
		return "ok\n"

	case "fork":
		return c.fork(t, d, ids)

	case "send-frame":
		oneID(t, d, ids, 1)
		return c.sendFrame(t, d, ids[0])

	case "crash":
		oneID(t, d, ids, 1)
		c.crash(ids[0])
		return "ok\n"

	case "restart":
		oneID(t, d, ids, 1)
		c.start(ids[0])
		return c.describeAll(ids)

	case "status":
		if len(ids) == 0 {
			ids = c.ids()
		}
		return c.describeAll(ids)

	case "sent":
		return c.perNode(ids, func(r *Replica) string {
			st := r.Stats()
			return fmt.Sprintf("sent=%d superseded=%d", st.Sent, st.Superseded)
		})

	case "data":
		return c.perNode(ids, func(r *Replica) string { return strings.Join(c.appliedCmds(r.cfg.ID), " ") })
	}
	d.Fatalf(t, "unknown command %q", d.Cmd)
	return ""
}

func (c *handCluster) describeAll(ids []uint64) string {
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(c.describeNode(id))
		b.WriteByte('\n')
	}
	return b.String()
}

// fork turns ids into members of a new group, as applying a split does:
// each stops, commits ForkGroup at its applied index, and starts again.
func (c *handCluster) fork(t *testing.T, d *datadriven.TestData, ids []uint64) string {
	g := scanGroup(t, d)
	voters := map[uint64]string{}
	for _, v := range scanIDs(t, d, "voters") {
		voters[v] = "addr-" + strconv.FormatUint(v, 10)
	}
	empty := scanIDs(t, d, "empty")
	var b strings.Builder
	for _, id := range ids {
		n := c.node(id)
		index := c.rep(id).Status().Applied
		if err := n.r.Close(); err != nil {
			d.Fatalf(t, "close %d: %v", id, err)
		}
		n.r = nil
		c.dropQueued(id)
		batch := n.db.NewBatch()
		isEmpty := slices.Contains(empty, id)
		if err := ForkGroup(batch, nil, g, index, voters, isEmpty); err != nil {
			d.Fatalf(t, "fork %d: %v", id, err)
		}
		if err := durable.Commit(n.db, batch); err != nil {
			d.Fatalf(t, "fork %d: %v", id, err)
		}
		batch.Close()
		n.boot, n.join = false, isEmpty
		c.start(id)
		fmt.Fprintf(&b, "%d: forked at %d\n", id, index)
	}
	b.WriteString(c.describeAll(ids))
	return b.String()
}

// sendFrame hands node to a frame built from the arguments, in the group
// they name, and shows the node after it took it.
func (c *handCluster) sendFrame(t *testing.T, d *datadriven.TestData, to uint64) string {
	g := scanGroup(t, d)
	var from, term, commit, index, logTerm uint64
	var typ string
	d.ScanArgs(t, "from", &from)
	d.ScanArgs(t, "type", &typ)
	d.ScanArgs(t, "term", &term)
	d.MaybeScanArgs(t, "commit", &commit)
	d.MaybeScanArgs(t, "index", &index)
	d.MaybeScanArgs(t, "log-term", &logTerm)
	mt, ok := pb.MessageType_value[typ]
	if !ok {
		d.Fatalf(t, "unknown message type %q", typ)
	}
	m := &pb.Message{Type: pb.MessageType(mt).Enum(), From: new(from), To: new(to), Term: new(term)}
	if commit != 0 {
		m.Commit = new(commit)
	}
	if index != 0 || logTerm != 0 {
		m.Index, m.LogTerm = new(index), new(logTerm)
	}
	r := c.rep(to)
	fmt.Fprintf(&c.out, "%s %s (sent by hand)\n", g, describeMsg(m))
	c.do(to, func() { r.Step(g, m) })
	return c.take() + c.describeNode(to) + "\n"
}

// perNode prints one line per node of ids (every node if none): what
// line says of its replica, or that it is down.
func (c *handCluster) perNode(ids []uint64, line func(*Replica) string) string {
	if len(ids) == 0 {
		ids = c.ids()
	}
	var b strings.Builder
	for _, id := range ids {
		if !c.running(id) {
			fmt.Fprintf(&b, "%d: down\n", id)
			continue
		}
		fmt.Fprintf(&b, "%d: %s\n", id, line(c.rep(id)))
	}
	return b.String()
}
