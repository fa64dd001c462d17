package cluster

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/cleavefs/cleave/internal/eventually"
)

// scrape fetches the metrics of a side port.
func scrape(t *testing.T, addr string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return body
}

// sample returns the value of the sample whose name and labels are series
// (as the text format spells them, e.g. `m{cluster="c1"}`).
func sample(body []byte, series string) (float64, error) {
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no sample %s", series)
}

// TestNodeStatusMetrics checks that what a node's STATUS reports is on its
// side port, labelled with its cluster, moving with writes, and that every
// name the node exports passes promlint.
func TestNodeStatusMetrics(t *testing.T) {
	mn := newMemberNet(t, 1)
	cfg := mn.cfgs[1]
	cfg.HTTP = "127.0.0.1:0"
	mn.cfgs[1] = cfg
	mn.start(1)
	lead := mn.leader()
	for i := range 6 {
		mn.put(lead, i)
	}
	n := mn.nodes[1]
	cl := `{cluster="` + n.Status().Cluster + `"}`
	eventually.Holds(t, 20*time.Second, "the node's metrics count its files and requests", func() error {
		body := scrape(t, n.HTTPAddr())
		for series, least := range map[string]float64{
			"cleave_node_files" + cl:                    6,
			"cleave_node_file_bytes" + cl:               6 * 300,
			"cleave_node_client_ops_total" + cl:         6,
			"cleave_node_data_bytes" + cl:               1,
			"cleave_node_pebble_disk_bytes" + cl:        1,
			"cleave_node_pebble_flushes_total" + cl:     0,
			"cleave_node_pebble_compactions_total" + cl: 0,
			// what the engine wrote besides the WAL: every put is flushed
			// eventually, but none need have been yet
			"cleave_node_pebble_flushed_bytes_total" + cl:   0,
			"cleave_node_pebble_compacted_bytes_total" + cl: 0,
			// every put is synced: the fsync histogram counts them
			"cleave_replica_sync_duration_seconds_count": 6,
		} {
			v, err := sample(body, series)
			if err != nil {
				return err
			}
			if v < least {
				return fmt.Errorf("%s = %v, want at least %v", series, v, least)
			}
		}
		for _, series := range []string{"cleave_node_scrub_checked_chunks_total", "cleave_node_repaired_chunks_total", "cleave_node_repair_failures_total"} {
			if _, err := sample(body, series+cl); err != nil {
				return err
			}
		}
		return nil
	})
	problems, err := promlint.New(bytes.NewReader(scrape(t, n.HTTPAddr()))).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
