package router

import (
	"context"
	"testing"

	"github.com/cleavefs/cleave/control"
	"github.com/cleavefs/cleave/wire"
)

// What each operation needs, and what anonymous and root connections get.
func TestAuthorizeRequirements(t *testing.T) {
	anonRead := &Router{cfg: Config{Token: "root-token", Anonymous: control.PermRead}}
	for _, tc := range []struct {
		req  wire.Request
		want wire.Code // for an anonymous reader
	}{
		{wire.Request{Op: wire.OpGet, Path: "/a/x"}, wire.OK},
		{wire.Request{Op: wire.OpList, Path: "/"}, wire.OK},
		{wire.Request{Op: wire.OpStatus}, wire.OK},
		{wire.Request{Op: wire.OpTable}, wire.OK},
		{wire.Request{Op: wire.OpSplit}, wire.OK}, // listing splits
		{wire.Request{Op: wire.OpPut, Path: "/a/x"}, wire.Forbidden},
		{wire.Request{Op: wire.OpChunk, Path: "/a/x"}, wire.Forbidden},
		{wire.Request{Op: wire.OpCopy, Path: "/a/x", To: "/a/y"}, wire.Forbidden},
		{wire.Request{Op: wire.OpSplit, Split: &wire.SplitSpec{Cluster: "c1"}}, wire.Forbidden},
		{wire.Request{Op: wire.OpRemoveMember, Cluster: "c1", Member: &wire.Member{ID: 2}}, wire.Forbidden},
		{wire.Request{Op: wire.OpUser, User: &wire.UserSpec{Verb: "list"}}, wire.Forbidden},
		{wire.Request{Op: wire.OpRaft}, wire.Forbidden},
		{wire.Request{Op: wire.OpSplitFork}, wire.Forbidden},
	} {
		resp := anonRead.authorize(context.Background(), principal{}, &tc.req)
		got := wire.OK
		if resp != nil {
			got = resp.Code
		}
		if got != tc.want {
			t.Errorf("anonymous reader, %v %s: %v, want %v", tc.req.Op, tc.req.Path, resp, tc.want)
		}
		if resp := anonRead.authorize(context.Background(), principal{root: true}, &tc.req); resp != nil {
			t.Errorf("root, %v: refused: %v", tc.req.Op, resp)
		}
	}
	// Anonymous writers may write, never administer.
	anonWrite := &Router{cfg: Config{Token: "root-token", Anonymous: control.PermWrite}}
	if resp := anonWrite.authorize(context.Background(), principal{}, &wire.Request{Op: wire.OpRename, Path: "/a/x", To: "/a/y"}); resp != nil {
		t.Errorf("anonymous writer refused a rename: %v", resp)
	}
	if resp := anonWrite.authorize(context.Background(), principal{}, &wire.Request{Op: wire.OpRemoveMember}); resp == nil || resp.Code != wire.Forbidden {
		t.Errorf("anonymous writer allowed REMOVE_MEMBER: %v", resp)
	}
	// A user the router cannot look up (no meta group, or removed) is
	// unauthorised, not forbidden.
	if resp := anonRead.authorize(context.Background(), principal{user: "alice"}, &wire.Request{Op: wire.OpGet, Path: "/a"}); resp == nil || resp.Code != wire.Unauthorized {
		t.Errorf("removed user: %v, want UNAUTHORIZED", resp)
	}
}

func TestAuthenticate(t *testing.T) {
	open := &Router{cfg: Config{}}
	if p, err := open.authenticate(context.Background(), ""); err != nil || !p.root {
		t.Errorf("open router: %v %v, want root", p, err)
	}
	closed := &Router{cfg: Config{Token: "s3cret"}}
	for _, tc := range []struct {
		token string
		root  bool
		fails bool
	}{
		{"s3cret", true, false},
		{"", false, true}, // no anonymous access by default
		{"s3cre", false, true},
		{"s3cret ", false, true},
	} {
		p, err := closed.authenticate(context.Background(), tc.token)
		if (err != nil) != tc.fails || p.root != tc.root {
			t.Errorf("token %q: %v %v", tc.token, p, err)
		}
	}
	anon := &Router{cfg: Config{Token: "s3cret", Anonymous: control.PermRead}}
	if p, err := anon.authenticate(context.Background(), ""); err != nil || p.root || p.user != "" {
		t.Errorf("anonymous reader: %v %v", p, err)
	}
}
