//go:build long

package tests

import (
	"fmt"
	"testing"
	"time"
)

// TestSplitOneGiB is the large split: a cluster holding 1 GiB splits
// (the learners catch up by snapshot), and every file reads back from its
// new owner.
func TestSplitOneGiB(t *testing.T) {
	d := ownDeployment(t, "--clusters", "1")
	c := d.dial(t)

	files := writeBulk(t, c, 1024, 1<<20, func(i int) string { return fmt.Sprintf("/big-%d/f%d", i%64, i) })

	splitStart := time.Now()
	out := d.split(t, "c1")
	t.Logf("split of a 1 GiB cluster took %v:\n%s", time.Since(splitStart).Round(time.Second), out)
	st := d.status(t)
	if len(st.Clusters) != 2 {
		t.Fatalf("after the split: %d clusters", len(st.Clusters))
	}
	files.verify(t, c, "from their owners after the split")
}
