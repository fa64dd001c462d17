//go:build long

package tests

import (
	"testing"
	"time"
)

// TestLargeFile2GiB checks that a 2 GiB file round-trips
// through the CLI with a matching SHA-256 while every node process and the
// cleave client process stay under 256 MiB resident (peak, VmHWM). It runs
// its own `cleave up` so the node figures are for this transfer.
func TestLargeFile2GiB(t *testing.T) {
	const limit = 256 << 20
	d := ownDeployment(t)
	d.waitLeaders(t, 30*time.Second)
	res := largeRoundTrip(t, d, 2<<30)
	t.Logf("2 GiB: put %s, get %s", res.putTook, res.getTook)
	t.Logf("client peak RSS: put %d MiB, get %d MiB", res.putRSS>>20, res.getRSS>>20)
	if res.putRSS >= limit || res.getRSS >= limit {
		t.Errorf("client peak RSS over 256 MiB")
	}
	st := d.status(t)
	for _, c := range st.Clusters {
		for _, n := range c.Nodes {
			if n.PID == 0 {
				t.Errorf("node %d of %s reports no pid", n.ID, c.ID)
				continue
			}
			hwm, err := vmHWM(n.PID)
			if err != nil {
				t.Errorf("node %d: %v", n.ID, err)
				continue
			}
			t.Logf("node %d (%s, %s, pid %d): peak RSS %d MiB", n.ID, c.ID, n.Role, n.PID, hwm>>20)
			if hwm >= limit {
				t.Errorf("node %d peak RSS %d MiB, over 256 MiB", n.ID, hwm>>20)
			}
		}
	}
}
