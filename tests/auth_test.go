package tests

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/internal/eventually"
)

// Roles end to end, against `cleave up` (which makes a root token and lets
// clients without one read and write, never administer):
//   - without credentials, `cleave node remove` is refused and the cluster
//     keeps its three members;
//   - a user granted read on /a reads /a/x, gets FORBIDDEN writing it, and
//     FORBIDDEN on /b whether or not the path exists, with the same answer;
//   - a removed user's open connection loses its rights as soon as its
//     router applied the removal.
func TestRolesAndAdminVerbs(t *testing.T) {
	skipInShortMode(t, "a deployment of its own")
	d := ownDeployment(t, "--clusters", "1")
	st := d.waitLeaders(t, 30*time.Second)
	members := len(st.Clusters[0].Nodes)

	// Anonymous admin: refused, nothing changes.
	out, err := d.anonymousCLI(t, "node", "remove", "--cluster", "c1", "--id", "2")
	if err == nil || !strings.Contains(string(out), "FORBIDDEN") {
		t.Fatalf("anonymous node remove: %v\n%s", err, out)
	}
	if n := len(d.status(t).Clusters[0].Nodes); n != members {
		t.Fatalf("after a refused remove the deployment has %d nodes, had %d", n, members)
	}
	out, err = d.anonymousCLI(t, "user", "add", "mallory")
	if err == nil || !strings.Contains(string(out), "FORBIDDEN") {
		t.Fatalf("anonymous user add: %v\n%s", err, out)
	}

	// Root makes alice, with read on /a.
	tok, err := d.cli(t, nil, "user", "add", "alice")
	if err != nil {
		t.Fatalf("user add: %v\n%s", err, tok)
	}
	if out, err := d.cli(t, nil, "user", "grant", "alice", "/a", "read"); err != nil {
		t.Fatalf("user grant: %v\n%s", err, out)
	}
	if out, err := d.cli(t, nil, "user", "list"); err != nil || !strings.Contains(string(out), "read /a") {
		t.Fatalf("user list: %v\n%s", err, out)
	}
	root := d.dial(t)
	want := map[string][]byte{}
	putFile(t, root, want, "/a/x", []byte("for alice"))
	putFile(t, root, want, "/b/y", []byte("not for alice"))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice, err := client.Dial(ctx, d.routerList(), client.WithToken(strings.TrimSpace(string(tok))))
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	if got, err := alice.Get(ctx, "/a/x"); err != nil || string(got) != "for alice" {
		t.Fatalf("alice reads /a/x: %q, %v", got, err)
	}
	if _, err := alice.Put(ctx, "/a/x", []byte("overwritten")); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("alice writes /a/x: %v, want FORBIDDEN", err)
	}
	_, errExisting := alice.Get(ctx, "/b/y")
	_, errMissing := alice.Get(ctx, "/b/missing")
	if !errors.Is(errExisting, client.ErrForbidden) || !errors.Is(errMissing, client.ErrForbidden) {
		t.Fatalf("alice reads /b: existing %v, missing %v; want FORBIDDEN for both", errExisting, errMissing)
	}
	if a, b := strings.Replace(errExisting.Error(), "/b/y", "P", -1), strings.Replace(errMissing.Error(), "/b/missing", "P", -1); a != b {
		t.Fatalf("answers tell an existing path from a missing one:\n%s\n%s", a, b)
	}
	if _, err := alice.Stat(ctx, "/b"); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("alice stats /b: %v, want FORBIDDEN", err)
	}
	if _, err := alice.RemoveMember(ctx, "c1", 2); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("alice removes a member: %v, want FORBIDDEN", err)
	}

	// Removing alice takes her rights from the connection she holds.
	if out, err := d.cli(t, nil, "user", "rm", "alice"); err != nil {
		t.Fatalf("user rm: %v\n%s", err, out)
	}
	// Every router applies the removal a moment after the meta leader.
	eventually.Holds(t, 10*time.Second, "removed alice is refused", func() error {
		if _, err := alice.Get(ctx, "/a/x"); !errors.Is(err, client.ErrUnauthorized) {
			return fmt.Errorf("removed alice reads /a/x: %v, want UNAUTHORIZED", err)
		}
		return nil
	})
	requireFiles(t, root, want, "at the end")
}
