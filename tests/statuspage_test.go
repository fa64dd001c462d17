package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/up"
)

// pageState is what the test reads off the status page.
type pageState struct {
	Segments []string `json:"segments"` // data-cluster of each ring segment
	Splits   []string `json:"splits"`   // "ID:PHASE" of each split row
	Done     []string `json:"done"`     // phase chips drawn as done, of the newest split
	Marker   bool     `json:"marker"`   // the mark set before the split: gone after a reload
	Version  string   `json:"version"`
}

const readPage = `({
  segments: [...document.querySelectorAll("#ring path.seg")].map((e) => e.dataset.cluster),
  splits: [...document.querySelectorAll("#splits tbody tr")].map((e) => e.dataset.split + ":" + e.dataset.phase),
  done: [...document.querySelectorAll("#splits tbody tr:first-child .phases span.done")].map((e) => e.dataset.phase),
  marker: window.cleaveTestMarker === true,
  version: document.body.dataset.version,
})`

// TestStatusPageInBrowser opens the status page of a running `cleave up`
// in headless Chromium, sees one ring segment per cluster, runs `cleave
// split`, and sees the split's phases and then a new segment appear
// without a reload. It saves a screenshot of the page after the split
// (its path is logged; kept with go test -artifacts, or written to
// $CLEAVE_SCREENSHOT_DIR if set).
func TestStatusPageInBrowser(t *testing.T) {
	skipInShortMode(t, "the status page browser test (its own deployment and a split)")
	if runtime.GOOS != "linux" {
		t.Skip("skipped: the browser test runs on Linux only (Debian's chromium)")
	}
	d := ownDeployment(t)
	topo, err := up.LoadTopology(d.dir)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + topo.Routers[0].HTTP + "/"
	if !strings.Contains(d.stdout.String(), "status page: "+url) {
		t.Fatalf("the banner does not print the status page %s:\n%s", url, d.stdout)
	}
	st := d.waitLeaders(t, 30*time.Second)
	var clusters []string
	for _, c := range st.Clusters {
		clusters = append(clusters, c.ID)
	}

	b := openBrowser(t, url)
	var ps pageState
	read := func() error { return b.eval(readPage, &ps) }
	eventually.Holds(t, 30*time.Second, "one ring segment per cluster", func() error {
		if err := read(); err != nil {
			return err
		}
		return eventually.True(slices.Equal(ps.Segments, clusters), "segments %v, clusters %v", ps.Segments, clusters)
	})
	var ok bool
	if err := b.eval("window.cleaveTestMarker = true", &ok); err != nil {
		t.Fatal(err)
	}

	// Watch the page while the split runs: the phases it shows are
	// recorded as they come (it polls every second; a fast phase may be
	// passed between two polls).
	src := clusters[0]
	done := make(chan string, 1)
	go func() { done <- d.split(t, src) }()
	var seen []string
	record := func() {
		if len(ps.Splits) > 0 {
			if s := ps.Splits[0]; len(seen) == 0 || seen[len(seen)-1] != s {
				seen = append(seen, s)
			}
		}
	}
	var out string
	watch := time.NewTicker(200 * time.Millisecond)
	defer watch.Stop()
	for out == "" {
		select {
		case out = <-done:
		case <-watch.C:
			if err := read(); err == nil {
				record()
			}
		case <-time.After(2 * time.Minute):
			t.Fatal("cleave split did not finish within 2 minutes")
		}
	}
	t.Logf("cleave split %s:\n%s", src, out)

	topo, err = up.LoadTopology(d.dir)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, c := range topo.Clusters {
		want = append(want, c.ID)
	}
	eventually.Holds(t, 30*time.Second, "the new cluster's segment and the finished split", func() error {
		if err := read(); err != nil {
			return err
		}
		record()
		segs := slices.Sorted(slices.Values(ps.Segments))
		switch {
		case !slices.Equal(segs, slices.Sorted(slices.Values(want))):
			return fmt.Errorf("segments %v, want %v", ps.Segments, want)
		case len(ps.Splits) != 1 || !strings.HasSuffix(ps.Splits[0], ":cleaned"):
			return fmt.Errorf("split rows %v, want one cleaned", ps.Splits)
		case len(ps.Done) != 6:
			return fmt.Errorf("phases drawn done %v, want all six", ps.Done)
		}
		return nil
	})
	if !ps.Marker {
		t.Fatal("the page was reloaded (its mark is gone): it must update in place")
	}
	t.Logf("phases the page showed, in order: %v; after: segments %v, table version %s", seen, ps.Segments, ps.Version)

	png, err := b.screenshot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.ArtifactDir()
	if d := os.Getenv("CLEAVE_SCREENSHOT_DIR"); d != "" {
		dir = d
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "statuspage.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the status page after the split: %s (%d bytes)", shot, len(png))
}
