package cluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/certs"
	"github.com/cleavefs/cleave/internal/eventually"
)

// A follower whose data directory was deleted, started again with its
// bootstrap flags, must not bootstrap a fresh copy of the group under its
// old raft id (it would have forgotten its vote and the entries it
// acknowledged): Start refuses, naming what happened and what to do, and
// leaves the directory without raft state, so a restart refuses again.
// The peers are asked on the peer plane, plaintext or on mutual TLS; on
// mutual TLS the node refuses even when asked to rejoin under a new id.
func TestWipedMemberRefusesToBootstrap(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(map[bool]string{false: "plaintext", true: "mutual-tls"}[tls], func(t *testing.T) { testWipedMember(t, tls) })
	}
}

// startThree starts newMemberNet's three nodes, on mutual TLS if tls
// (returning the CA directory), writes five files and returns a follower.
func startThree(t *testing.T, tls bool) (mn *memberNet, lead, follower uint64, caDir string) {
	mn = newMemberNet(t, 3)
	if tls {
		dir := t.TempDir()
		tl := peerCerts(t, dir, "node-1", "node-2", "node-3")
		caDir = filepath.Join(dir, "ca")
		for id, cfg := range mn.cfgs {
			cfg.PeerTLS = tl[certs.Name(certs.RoleNode, strconv.FormatUint(id, 10))]
			mn.cfgs[id] = cfg
		}
	}
	for id := uint64(1); id <= 3; id++ {
		mn.start(id)
	}
	lead = mn.leader()
	for i := range 5 {
		mn.put(lead, i)
	}
	return mn, lead, others3(lead)[0], caDir
}

func testWipedMember(t *testing.T, tls bool) {
	mn, lead, wiped, _ := startThree(t, tls)
	mn.waitFor("the leader sees the follower's acknowledgements", func() bool {
		for _, m := range mn.nodes[lead].Members() {
			if m.ID == wiped && m.Match > 0 {
				return true
			}
		}
		return false
	})
	mn.stop(wiped)
	if err := os.RemoveAll(mn.cfgs[wiped].DataDir); err != nil {
		t.Fatal(err)
	}
	want := []string{"node " + strconv.FormatUint(wiped, 10), "cluster c1", "empty data directory", "cleave node replace"}
	if tls {
		// Even when asked to rejoin under a new id: its certificate names the old one.
		cfg := mn.cfgs[wiped]
		cfg.RejoinWiped = true
		mn.cfgs[wiped] = cfg
		want = append(want, "peer certificate names raft id")
	}
	for attempt := 1; attempt <= 2; attempt++ {
		err := mn.startWiped(lead, wiped)
		t.Logf("start %d: %v", attempt, err)
		for _, want := range want {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("start %d: error %q does not name %q", attempt, err, want)
			}
		}
	}
	// The group goes on without it.
	mn.put(mn.leader(), 101)
}

// A member of a new cluster that starts after the others have elected a
// leader and taken writes has never acknowledged anything: it bootstraps
// and catches up as before.
func TestLateFirstStartBootstraps(t *testing.T) {
	mn := newMemberNet(t, 3)
	mn.start(1)
	mn.start(2)
	lead := mn.leader()
	for i := range 5 {
		mn.put(lead, i)
	}
	mn.start(3)
	mn.put(mn.leader(), 100)
	mn.waitSameState(1, 2, 3)
}

// A node that joined with --join (as every node of a split-born cluster
// and every replacement does, on every start) and lost its disk is
// refused too: waiting for a snapshot under its old id, it would never get
// one, since the leader's progress still records what it held.
func TestWipedJoinerRefusesToStart(t *testing.T) {
	mn := newMemberNet(t, 3)
	for id := uint64(1); id <= 3; id++ {
		mn.start(id)
	}
	lead := mn.leader()
	mn.joinVoter(lead, 4)
	for i := range 5 {
		mn.put(lead, i)
	}
	mn.waitSameState(1, 2, 3, 4)
	mn.stop(4)
	if err := os.RemoveAll(mn.cfgs[4].DataDir); err != nil {
		t.Fatal(err)
	}
	t.Logf("start: %v", mn.startWiped(lead, 4))
}

// startWiped starts node id, whose data directory was deleted, and
// returns Start's error, which must be ErrWipedMember. A start that
// succeeds fails the test, saying whether the node caught up with leader
// lead within 10 s after one more write.
func (mn *memberNet) startWiped(lead, id uint64) error {
	mn.t.Helper()
	n, err := Start(mn.cfgs[id])
	if err == nil {
		mn.nodes[id] = n
		mn.put(lead, 100)
		want := mn.nodes[lead].Status().Applied
		caught := eventually.Within(10*time.Second, "caught up", func() error {
			return eventually.True(n.Status().Applied >= want, "applied %d < %d", n.Status().Applied, want)
		})
		mn.t.Fatalf("start of wiped node %d succeeded under its old raft id (catching up to the leader's applied index: %v; bad-commit frames dropped: %d)",
			id, caught, n.Status().BadCommitFrames)
	}
	if !errors.Is(err, ErrWipedMember) {
		mn.t.Fatalf("start of wiped node %d: %v, want ErrWipedMember", id, err)
	}
	return err
}

// With RejoinWiped (the operator's pods), a follower whose data directory
// was deleted starts under a new raft id, recorded in the directory, and
// names the id it replaces in its status until the replacement (learner,
// promotion, removal of the old id) has reached it; it then holds the
// group's state, and a restart from the same flags keeps the new id.
func TestWipedMemberRejoinsUnderNewID(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(map[bool]string{false: "plaintext", true: "mutual-tls"}[tls], func(t *testing.T) { testRejoin(t, tls) })
	}
}

// testRejoin is TestWipedMemberRejoinsUnderNewID; on mutual TLS the node
// issues itself a certificate for its new id from RejoinCA, or its peers
// would drop its frames and it would never catch up.
func testRejoin(t *testing.T, tls bool) {
	mn, lead, wiped, caDir := startThree(t, tls)
	mn.waitSameState(1, 2, 3)
	mn.stop(wiped)
	if err := os.RemoveAll(mn.cfgs[wiped].DataDir); err != nil {
		t.Fatal(err)
	}
	cfg := mn.cfgs[wiped]
	cfg.RejoinWiped, cfg.RejoinCA = true, caDir
	mn.cfgs[wiped] = cfg
	mn.start(wiped)
	st := mn.nodes[wiped].Status()
	fresh := st.ID
	if fresh == wiped || st.Replaces != wiped {
		t.Fatalf("wiped node %d restarted as node %d replacing %d; want a new id replacing %d", wiped, fresh, st.Replaces, wiped)
	}
	if want := certs.Name(certs.RoleNode, strconv.FormatUint(fresh, 10)); tls && cfg.PeerTLS.CommonName() != want {
		t.Fatalf("peer certificate of the new node is %s, want %s", cfg.PeerTLS.CommonName(), want)
	}
	mn.put(lead, 5)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	leader := mn.nodes[lead]
	if err := leader.AddLearner(ctx, fresh, mn.addrs[wiped], mn.peers[wiped]); err != nil {
		t.Fatalf("AddLearner(%d): %v", fresh, err)
	}
	if err := leader.Promote(ctx, fresh); err != nil {
		t.Fatalf("Promote(%d): %v", fresh, err)
	}
	if got := mn.nodes[wiped].Status().Replaces; got != wiped {
		t.Errorf("status before the old id is removed: replaces %d, want %d", got, wiped)
	}
	if err := leader.RemoveMember(ctx, wiped); err != nil {
		t.Fatalf("RemoveMember(%d): %v", wiped, err)
	}
	mn.waitFor("the new node sees the replacement done", func() bool { return mn.nodes[wiped].Status().Replaces == 0 })
	mn.put(lead, 6)
	mn.waitSameState(1, 2, 3)

	mn.stop(wiped)
	if tls {
		// A new pod's init container issues the certificate of the pod's
		// configured id again; the node, under its recorded one, reissues.
		if err := cfg.PeerTLS.Reissue(caDir, certs.Name(certs.RoleNode, strconv.FormatUint(wiped, 10))); err != nil {
			t.Fatal(err)
		}
	}
	mn.start(wiped)
	if want := certs.Name(certs.RoleNode, strconv.FormatUint(fresh, 10)); tls && cfg.PeerTLS.CommonName() != want {
		t.Fatalf("peer certificate after the restart is %s, want %s", cfg.PeerTLS.CommonName(), want)
	}
	if st := mn.nodes[wiped].Status(); st.ID != fresh || st.Replaces != 0 {
		t.Fatalf("restarted from the same flags as node %d replacing %d; want node %d replacing none", st.ID, st.Replaces, fresh)
	}
	mn.put(mn.leader(), 7)
	mn.waitSameState(1, 2, 3)
}

// A malformed identity record is refused by name, not taken as no record.
func TestIdentityRecordChecked(t *testing.T) {
	mn := newMemberNet(t, 3)
	cfg := mn.cfgs[1]
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ body, want string }{
		{`{"id":`, "not a node identity record"},
		{`{"id":7,"replaces":0}`, "must be nonzero and differ"},
		{`{"id":7,"replaces":9}`, "configured as node 1"},
	} {
		if err := os.WriteFile(filepath.Join(cfg.DataDir, identityFile), []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Start(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), identityFile) {
			t.Errorf("identity %s: Start error %v, want one naming %s and %q", tc.body, err, identityFile, tc.want)
		}
	}
}

// The leader itself, wiped and restarted before its followers elect
// another, is refused too: no leader answers the check, but both
// followers saw it lead (replica.Member.Acked), and say so.
func TestWipedLeaderRefusesToBootstrap(t *testing.T) {
	mn, lead, _, _ := startThree(t, false)
	mn.waitSameState(1, 2, 3)
	mn.stop(lead)
	if err := os.RemoveAll(mn.cfgs[lead].DataDir); err != nil {
		t.Fatal(err)
	}
	t.Logf("start: %v", mn.startWiped(others3(lead)[0], lead))
}
