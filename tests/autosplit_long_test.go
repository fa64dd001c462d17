//go:build long

package tests

import (
	"fmt"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/eventually"
)

// TestAutoSplit is the auto-split acceptance: `cleave up
// --auto-split-bytes 64MiB` on one cluster, 300 MiB written across many
// roots, ends with more clusters than it started with, and every file
// reads back.
func TestAutoSplit(t *testing.T) {
	d := ownDeployment(t, "--clusters", "1", "--auto-split-bytes", "64MiB", "--auto-split-window", "5s")
	c := d.dial(t)

	start := time.Now()
	files := writeBulk(t, c, 300, 1<<20, autoPath)

	// Wait for the splits to finish: more than one cluster, none splitting.
	eventually.Holds(t, 5*time.Minute, "the automatic splits to finish", func() error {
		st := d.status(t)
		busy := false
		for _, sp := range st.Splits {
			busy = busy || !sp.Phase.Final()
		}
		if len(st.Clusters) > 1 && !busy {
			var ids []string
			for _, cl := range st.Clusters {
				ids = append(ids, fmt.Sprintf("%s %v", cl.ID, cl.Range))
			}
			t.Logf("after %v: %d clusters: %v", time.Since(start).Round(time.Second), len(st.Clusters), ids)
			return nil
		}
		return fmt.Errorf("still %d cluster(s), splits %+v", len(st.Clusters), st.Splits)
	})
	files.verify(t, c, "after the splits")
}

func autoPath(i int) string { return fmt.Sprintf("/auto-%d/f%d", i%60, i) }
