package router

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/cleavefs/cleave/wire"
)

// getSide fetches path from the router's side port.
func getSide(t *testing.T, r *Router, path string) (int, string, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+r.HTTPAddr()+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

// TestStatusPage checks that the side port serves the status page, its
// files and status.json, the same document as the router's STATUS answer.
func TestStatusPage(t *testing.T) {
	c1, c2 := startStandins(t, "c1", 3, 0), startStandins(t, "c2", 3, 1)
	r, c := startRouter(t, []wire.ClusterInfo{
		{ID: "c1", Members: members(addrs(c1)...)}, {ID: "c2", Members: members(addrs(c2)...)},
	}, func(cfg *Config) { cfg.HTTP = "127.0.0.1:0" })

	code, ctype, body := getSide(t, r, "/")
	if code != http.StatusOK || !strings.HasPrefix(ctype, "text/html") || !bytes.Contains(body, []byte(`<svg id="ring"`)) {
		t.Fatalf("GET /: %d %s, want the status page:\n%.300s", code, ctype, body)
	}
	for _, f := range []string{"/status.js", "/status.css"} {
		if code, _, body := getSide(t, r, f); code != http.StatusOK || len(body) == 0 {
			t.Errorf("GET %s: %d, %d bytes", f, code, len(body))
		}
	}

	code, ctype, body = getSide(t, r, "/status.json")
	if code != http.StatusOK || ctype != "application/json" {
		t.Fatalf("GET /status.json: %d %s:\n%s", code, ctype, body)
	}
	var page wire.Status
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatalf("status.json: %v:\n%s", err, body)
	}
	want := call(t, c, &wire.Request{Op: wire.OpStatus}).Status
	if len(page.Clusters) != 2 || page.Router != want.Router || page.Version != want.Version {
		t.Fatalf("status.json router %q version %d clusters %d; STATUS says %q %d %d", page.Router, page.Version, len(page.Clusters), want.Router, want.Version, len(want.Clusters))
	}
	for i, cs := range page.Clusters {
		w := want.Clusters[i]
		if cs.ID != w.ID || cs.Range != w.Range || cs.Leader != w.Leader || len(cs.Nodes) != 3 {
			t.Errorf("status.json cluster %d: %s %v leader %q, %d nodes; STATUS: %s %v leader %q", i, cs.ID, cs.Range, cs.Leader, len(cs.Nodes), w.ID, w.Range, w.Leader)
		}
	}
	if code, _, _ := getSide(t, r, "/nonexistent"); code != http.StatusNotFound {
		t.Errorf("GET /nonexistent: %d, want 404", code)
	}
}

// TestRouterStatusMetrics checks that the router exports its splits by
// phase, gossip's view and its meta group place, and that every name it
// exports passes promlint.
func TestRouterStatusMetrics(t *testing.T) {
	c1 := startStandins(t, "c1", 3, 0)
	r, _ := startRouter(t, []wire.ClusterInfo{{ID: "c1", Members: members(addrs(c1)...)}},
		func(cfg *Config) { cfg.HTTP = "127.0.0.1:0" })
	_, _, body := getSide(t, r, "/metrics")
	for _, want := range []string{
		`cleave_router_splits{phase="planned"} 0`, `cleave_router_splits{phase="table-updated"} 0`,
		`cleave_router_gossip_members{state="alive"} 0`, `cleave_router_gossip_members{state="dead"} 0`,
		`cleave_router_meta_leader 0`, `cleave_router_table_version 1`,
	} {
		if !bytes.Contains(body, []byte(want+"\n")) {
			t.Errorf("metrics lack %q", want)
		}
	}
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
