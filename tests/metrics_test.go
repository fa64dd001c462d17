package tests

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/up"
)

// scrapeMetrics fetches http://addr/metrics.
func scrapeMetrics(t *testing.T, addr string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s/metrics: %s", addr, resp.Status)
	}
	return body, err
}

// metricSum sums the samples of metric name whose labels contain every
// one of labels (`op="PUT"`); found says whether any sample matched.
func metricSum(body []byte, name string, labels ...string) (sum float64, found bool) {
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		matches := true
		for _, l := range labels {
			matches = matches && strings.Contains(rest, l)
		}
		sp := strings.LastIndexByte(rest, ' ')
		v, err := strconv.ParseFloat(rest[sp+1:], 64)
		if matches && err == nil {
			sum, found = sum+v, true
		}
	}
	return sum, found
}

// lintMetrics fails t for every problem promlint finds in body.
func lintMetrics(t *testing.T, who string, body []byte) {
	t.Helper()
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatalf("%s: promlint: %v", who, err)
	}
	for _, p := range problems {
		t.Errorf("%s: promlint: %s: %s", who, p.Metric, p.Text)
	}
}

// TestMetricsByDefault scrapes /metrics of a router and of a cluster's
// leader under `cleave up` started with no extra flags, lints the names,
// and sees the request, apply and usage counters move under a load of
// writes.
func TestMetricsByDefault(t *testing.T) {
	d := sharedDeployment(t)
	topo, err := up.LoadTopology(d.dir)
	if err != nil {
		t.Fatal(err)
	}
	routerHTTP := topo.Routers[0].HTTP
	if routerHTTP == "" || !strings.Contains(d.stdout.String(), "status page: http://"+routerHTTP+"/") {
		t.Fatalf("up.json gives router %s side port %q; the banner does not name its status page:\n%s", topo.Routers[0].ID, routerHTTP, d.stdout)
	}
	st := d.waitLeaders(t, 30*time.Second)
	var nodeHTTP, cluster string
	for _, c := range topo.Clusters {
		for _, n := range c.Nodes {
			if n.Addr == st.Clusters[0].Leader {
				nodeHTTP, cluster = n.HTTP, c.ID
			}
		}
	}
	if nodeHTTP == "" {
		t.Fatalf("no side port in up.json for %s, the leader of %s", st.Clusters[0].Leader, st.Clusters[0].ID)
	}
	clusterLabel := `cluster="` + cluster + `"`

	type figures struct{ routerPuts, nodePuts, applied, ops float64 }
	read := func() (figures, error) {
		rb, err := scrapeMetrics(t, routerHTTP)
		if err != nil {
			return figures{}, err
		}
		nb, err := scrapeMetrics(t, nodeHTTP)
		if err != nil {
			return figures{}, err
		}
		// The request counters appear with the first request of their
		// kind; the others are there from the start.
		var f figures
		var ok1, ok2 bool
		f.routerPuts, _ = metricSum(rb, "cleave_router_requests_total", `op="PUT"`, `code="OK"`)
		f.nodePuts, _ = metricSum(nb, "cleave_node_requests_total", `op="PUT"`)
		f.applied, ok1 = metricSum(nb, "cleave_replica_applied_entries_total")
		f.ops, ok2 = metricSum(nb, "cleave_node_client_ops_total", clusterLabel)
		if !ok1 || !ok2 {
			return f, fmt.Errorf("the node's metrics lack applied entries (%v) or client ops of %s (%v)", ok1, cluster, ok2)
		}
		return f, nil
	}
	rb, err := scrapeMetrics(t, routerHTTP)
	if err != nil {
		t.Fatal(err)
	}
	lintMetrics(t, "router", rb)
	for _, series := range []string{"cleave_router_splits", "cleave_router_gossip_members", "cleave_router_table_version", "cleave_router_meta_leader"} {
		if _, ok := metricSum(rb, series); !ok {
			t.Errorf("router metrics lack %s", series)
		}
	}
	before, err := read()
	if err != nil {
		t.Fatal(err)
	}

	const puts, roots = 40, 20
	c := d.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Paths under one root live on one cluster: spread over 20 roots, the
	// writes reach both clusters (all on one: a chance of 2 in 2^20).
	for i := range puts {
		p := fmt.Sprintf("/metrics-%d/f%d", i%roots, i)
		if _, err := c.Put(ctx, p, []byte("metrics "+p), client.Parents()); err != nil {
			t.Fatalf("put %s: %v", p, err)
		}
	}
	var after figures
	eventually.Holds(t, 30*time.Second, "the counters move under load", func() error {
		if after, err = read(); err != nil {
			return err
		}
		switch {
		case after.routerPuts < before.routerPuts+puts:
			return fmt.Errorf("router PUT OK requests %v -> %v, want +%d", before.routerPuts, after.routerPuts, puts)
		case after.nodePuts <= before.nodePuts:
			return fmt.Errorf("leader's PUT requests %v -> %v", before.nodePuts, after.nodePuts)
		case after.applied <= before.applied:
			return fmt.Errorf("leader's applied entries %v -> %v", before.applied, after.applied)
		case after.ops <= before.ops:
			return fmt.Errorf("leader's client ops %v -> %v", before.ops, after.ops)
		}
		return nil
	})
	nb, err := scrapeMetrics(t, nodeHTTP)
	if err != nil {
		t.Fatal(err)
	}
	lintMetrics(t, "node", nb)
	checkDashboard(t, rb, nb)
	t.Logf("router PUTs %v -> %v; leader of %s: PUTs %v -> %v, applied %v -> %v, ops %v -> %v",
		before.routerPuts, after.routerPuts, cluster, before.nodePuts, after.nodePuts, before.applied, after.applied, before.ops, after.ops)
}

// checkDashboard fails t for every metric docs/grafana-dashboard.json
// queries that neither scrape exports (a histogram by its base name).
func checkDashboard(t *testing.T, scrapes ...[]byte) {
	t.Helper()
	dash, err := os.ReadFile(filepath.Join("..", "docs", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`cleave_[a-z_]+`).FindAll(dash, -1)
	if len(names) == 0 {
		t.Fatal("the dashboard queries no cleave metric")
	}
	for _, n := range names {
		name := strings.TrimSuffix(string(n), "_bucket")
		if !slices.ContainsFunc(scrapes, func(b []byte) bool { return bytes.Contains(b, []byte("\n# TYPE "+name+" ")) }) {
			t.Errorf("docs/grafana-dashboard.json queries %s, which no router or node exports", n)
		}
	}
}
