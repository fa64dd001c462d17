package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cleavefs/cleave/control"
	"github.com/cleavefs/cleave/internal/testcluster"
	"github.com/cleavefs/cleave/router"
)

// docExamples reads the -o json examples of docs/cli.md: each is a
// ```console block whose first line is "$ cleave WORDS -o json ..." and
// whose rest is the JSON printed, keyed by WORDS ("stat", "user list").
func docExamples(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "cli.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	blocks := strings.Split(string(b), "```console\n")
	for _, blk := range blocks[1:] {
		body, _, ok := strings.Cut(blk, "```")
		if !ok {
			t.Fatalf("docs/cli.md: an unterminated console block: %.60q", blk)
		}
		cmdLine, js, _ := strings.Cut(body, "\n")
		words, _, ok := strings.Cut(strings.TrimPrefix(cmdLine, "$ cleave "), " -o json")
		if !ok || !strings.HasPrefix(cmdLine, "$ cleave ") {
			t.Fatalf("docs/cli.md: example %q is not \"$ cleave WORDS -o json ...\"", cmdLine)
		}
		var v any
		if err := json.Unmarshal([]byte(js), &v); err != nil {
			t.Fatalf("docs/cli.md: the output of %q is not JSON: %v", cmdLine, err)
		}
		if _, dup := out[words]; dup {
			t.Fatalf("docs/cli.md: two examples of %q", words)
		}
		out[words] = v
	}
	return out
}

// conform fails unless got has only keys the documented example has, each
// with the same JSON kind, recursively (array elements against the
// example's first element).
func conform(t *testing.T, at string, doc, got any) {
	t.Helper()
	if kind(doc) != kind(got) && got != nil {
		t.Errorf("%s: printed a %s, docs/cli.md shows a %s", at, kind(got), kind(doc))
		return
	}
	switch g := got.(type) {
	case map[string]any:
		d := doc.(map[string]any)
		for k, v := range g {
			dv, ok := d[k]
			if !ok {
				t.Errorf("%s: key %q is printed but not in docs/cli.md", at, k)
				continue
			}
			conform(t, at+"."+k, dv, v)
		}
	case []any:
		d := doc.([]any)
		if len(g) > 0 && len(d) == 0 {
			t.Errorf("%s: docs/cli.md shows an empty array, so no element shape", at)
			return
		}
		for i, v := range g {
			conform(t, fmt.Sprintf("%s[%d]", at, i), d[0], v)
		}
	}
}

func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	}
	return "null"
}

// Every client command that prints something prints one JSON object with
// -o json, with the keys its example in docs/cli.md shows (and no others),
// run against a real deployment with a meta group, users and a split.
func TestJSONShapes(t *testing.T) {
	clearEnv(t)
	docs := docExamples(t)
	d := testcluster.Start(t, testcluster.Options{Router: func(rc *router.Config) {
		rc.Meta = &control.MetaConfig{RaftID: 1, Peers: map[uint64]string{1: "127.0.0.1:1"}, TickInterval: 10 * time.Millisecond}
		rc.PeerListen = "127.0.0.1:0" // a group of one: nobody dials its peer address
	}})
	t.Setenv("CLEAVE_ROUTER", d.Addr)
	dir := "/" + d.RootIn(t, "c1", "shapes-")
	joiners := joinersFlag(t, d, "c2", 100, 3)
	learner, learnerPeer := testcluster.ClosedAddr(t), testcluster.ClosedAddr(t)
	local := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(local, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		words string   // the command; its docs/cli.md example unless doc is set
		doc   string   // the docs/cli.md example of another command with the same shape
		args  []string // after "-o json"
		keys  []string // top-level keys that must be printed
	}{
		{"mkdir", "", []string{"mkdir", "-p", dir + "/d"}, nil},
		{"put", "", []string{"put", dir + "/a", local}, statKeys},
		{"stat", "", []string{"stat", dir + "/a"}, statKeys},
		{"append", "", []string{"append", dir + "/a", local}, statKeys},
		{"write", "", []string{"write", "--offset", "1", dir + "/a", local}, statKeys},
		{"cp", "", []string{"cp", dir + "/a", dir + "/d/b"}, statKeys},
		{"ls", "", []string{"ls", dir}, []string{"entries", "next"}},
		{"ls", "", []string{"ls", "-R", dir}, []string{"entries", "next"}},
		{"exists", "", []string{"exists", dir + "/a"}, []string{"path", "exists"}},
		{"user add", "", []string{"user", "add", "alice"}, []string{"name", "token"}},
		{"user grant", "", []string{"user", "grant", "alice", dir, "read"}, nil},
		{"user list", "", []string{"user", "list"}, []string{"users"}},
		{"node add", "", []string{"node", "add", "--cluster", "c1", "--id", "99", "--addr", learner, "--peer-addr", learnerPeer}, nodeKeys},
		{"node remove", "node add", []string{"node", "remove", "--cluster", "c1", "--id", "99"}, nodeKeys},
		{"split", "", []string{"split", "--timeout", "2m", "c1", "--new-cluster", "c2", "--nodes", joiners}, []string{"id", "cluster", "new_cluster", "nodes", "range", "at", "phase"}},
		{"routes", "", []string{"routes"}, []string{"version", "ranges", "clusters"}},
		{"status", "", []string{"status"}, []string{"router", "version", "routers", "clusters", "splits"}},
	} {
		code, out, stderr := cli(t, "", append([]string{"-o", "json"}, tc.args...)...)
		if code != 0 {
			t.Fatalf("cleave -o json %s: exit %d, stderr %q", strings.Join(tc.args, " "), code, stderr)
		}
		if tc.keys == nil {
			if out != "" {
				t.Errorf("cleave -o json %s printed %q, want nothing", strings.Join(tc.args, " "), out)
			}
			continue
		}
		var got any
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("cleave -o json %s: %v in %q", strings.Join(tc.args, " "), err, out)
		}
		obj, ok := got.(map[string]any)
		if !ok {
			t.Errorf("cleave -o json %s printed a %s, want an object", strings.Join(tc.args, " "), kind(got))
			continue
		}
		for _, k := range tc.keys {
			if _, ok := obj[k]; !ok {
				t.Errorf("cleave -o json %s: no %q in %s", strings.Join(tc.args, " "), k, out)
			}
		}
		name := tc.words
		if tc.doc != "" {
			name = tc.doc
		}
		doc, ok := docs[name]
		if !ok {
			t.Errorf("docs/cli.md has no example of \"cleave %s -o json\"", name)
			continue
		}
		conform(t, tc.words, doc, got)
	}
}

var (
	statKeys = []string{"name", "type", "size", "mtime", "version", "checksum"}
	nodeKeys = []string{"id", "cluster", "addr", "role", "term", "leader_id", "commit", "applied", "range", "members"}
)

// joinersFlag starts n empty nodes of cluster id that join c1 and returns
// them as split's --nodes value, ID=CLIENT/PEER,...
func joinersFlag(t *testing.T, d *testcluster.Deployment, id string, firstID uint64, n int) string {
	t.Helper()
	var out []string
	for _, m := range d.StartJoiners(t, id, firstID, n) {
		out = append(out, fmt.Sprintf("%d=%s/%s", m.ID, m.Addr, m.PeerAddr))
	}
	return strings.Join(out, ",")
}
