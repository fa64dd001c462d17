package control

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/cleavefs/cleave/replica"
	"github.com/cleavefs/cleave/wire"
)

func TestPermits(t *testing.T) {
	grants := []wire.Grant{{Prefix: "/a", Perm: "read"}, {Prefix: "/w", Perm: "write"}, {Prefix: "/adm", Perm: "admin"}}
	for _, tc := range []struct {
		need Perm
		path string
		want bool
	}{
		{PermRead, "/a", true},
		{PermRead, "/a/x", true},
		{PermRead, "/a/x/y", true},
		{PermWrite, "/a/x", false},
		{PermRead, "/ab", false}, // whole components only
		{PermRead, "/b", false},
		{PermRead, "/", false},
		{PermWrite, "/w/f", true},
		{PermRead, "/w/f", true}, // write includes read
		{PermAdmin, "/w", false},
		{PermWrite, "/adm/f", true},
		{PermAdmin, "/", false}, // admin on /adm is not admin on /
	} {
		if got := Permits(grants, tc.need, tc.path); got != tc.want {
			t.Errorf("Permits(%s on %s) = %v, want %v", tc.need, tc.path, got, tc.want)
		}
	}
	if !Permits([]wire.Grant{{Prefix: "/", Perm: "admin"}}, PermAdmin, "/") {
		t.Error("admin on / does not permit admin on /")
	}
	if Permits([]wire.Grant{{Prefix: "/", Perm: "bogus"}}, PermRead, "/x") {
		t.Error("a grant with an unknown permission permits reading")
	}
}

func TestNextUsers(t *testing.T) {
	hash := HashToken("t")
	var users []userRecord
	apply := func(c userCommand) error {
		next, err := nextUsers(users, &c)
		if err == nil {
			users = next
		}
		return err
	}
	for _, step := range []struct {
		c    userCommand
		want error
	}{
		{userCommand{Verb: "add", Name: "bob", Hash: hash}, nil},
		{userCommand{Verb: "add", Name: "alice", Hash: hash}, nil},
		{userCommand{Verb: "add", Name: "bob", Hash: hash}, ErrUserExists},
		{userCommand{Verb: "add", Name: "carol", Hash: []byte("short")}, ErrBadUser},
		{userCommand{Verb: "add", Name: "bad name", Hash: hash}, ErrBadUser},
		{userCommand{Verb: "add", Name: "", Hash: hash}, ErrBadUser},
		{userCommand{Verb: "grant", Name: "alice", Grant: wire.Grant{Prefix: "/a", Perm: "read"}}, nil},
		{userCommand{Verb: "grant", Name: "alice", Grant: wire.Grant{Prefix: "/a", Perm: "write"}}, nil}, // replaces
		{userCommand{Verb: "grant", Name: "alice", Grant: wire.Grant{Prefix: "a", Perm: "read"}}, ErrBadUser},
		{userCommand{Verb: "grant", Name: "alice", Grant: wire.Grant{Prefix: "/b", Perm: "root"}}, ErrBadUser},
		{userCommand{Verb: "grant", Name: "nobody", Grant: wire.Grant{Prefix: "/b", Perm: "read"}}, ErrNoUser},
		{userCommand{Verb: "revoke", Name: "alice", Grant: wire.Grant{Prefix: "/z"}}, ErrNoUser},
		{userCommand{Verb: "rm", Name: "bob"}, nil},
		{userCommand{Verb: "rm", Name: "bob"}, ErrNoUser},
		{userCommand{Verb: "chmod", Name: "alice"}, ErrBadUser},
	} {
		err := apply(step.c)
		if !errors.Is(err, step.want) || (err == nil) != (step.want == nil) {
			t.Fatalf("%s %q: got %v, want %v", step.c.Verb, step.c.Name, err, step.want)
		}
	}
	if len(users) != 1 || users[0].Name != "alice" || len(users[0].Grants) != 1 || users[0].Grants[0] != (wire.Grant{Prefix: "/a", Perm: "write"}) {
		t.Fatalf("users = %+v, want alice with write on /a", users)
	}
	before := users
	if _, err := nextUsers(before, &userCommand{Verb: "revoke", Name: "alice", Grant: wire.Grant{Prefix: "/a"}}); err != nil {
		t.Fatal(err)
	}
	if len(before[0].Grants) != 1 {
		t.Fatal("nextUsers modified the state it was given")
	}
}

// dropTransport drops every message: a one-member group sends none.
type dropTransport struct{}

func (dropTransport) Send(replica.Group, []*pb.Message) {}

// Users go through the real meta group, survive a restart, and a token
// authenticates only the user it was issued to.
func TestMetaTableUsers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "meta")
	open := func() *MetaTable {
		m, err := OpenMetaTable(MetaConfig{
			RaftID: 1, Peers: map[uint64]string{1: "127.0.0.1:1"}, Dir: dir,
			Bootstrap: BootstrapTable(twoClusters()), Logger: slog.New(slog.DiscardHandler),
			TickInterval: 10 * time.Millisecond,
		}, dropTransport{})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := open()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for !m.IsLeader() {
		if ctx.Err() != nil {
			t.Fatal("one-member meta group elected no leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	tok, err := m.ChangeUser(ctx, &wire.UserSpec{Verb: "add", Name: "alice"})
	if err != nil || len(tok) < 40 {
		t.Fatalf("add alice: token %q, %v", tok, err)
	}
	if _, err := m.ChangeUser(ctx, &wire.UserSpec{Verb: "grant", Name: "alice", Prefix: "/a", Perm: "read"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ChangeUser(ctx, &wire.UserSpec{Verb: "grant", Name: "alice", Prefix: "/a", Perm: "sudo"}); !errors.Is(err, ErrBadUser) {
		t.Fatalf("grant sudo: %v, want ErrBadUser", err)
	}
	m.Close()

	m = open()
	defer m.Close()
	name, grants, ok := m.Authenticate(tok)
	if !ok || name != "alice" || !Permits(grants, PermRead, "/a/x") || Permits(grants, PermWrite, "/a/x") {
		t.Fatalf("after restart: Authenticate = %q %v %v", name, grants, ok)
	}
	if _, _, ok := m.Authenticate(tok + "x"); ok {
		t.Fatal("a wrong token authenticated")
	}
	if us := m.Users(); len(us) != 1 || us[0].Name != "alice" {
		t.Fatalf("Users = %+v", us)
	}
}
