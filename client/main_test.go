package client_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/internal/testcluster"
)

// shared is one real deployment (2 clusters of 3 nodes and a router, all
// in this process) used by the tests that do not need their own. Each test
// works under its own root directories (see root).
var shared *testcluster.Deployment

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cleave-client-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shared, err = testcluster.New(testcluster.Options{Clusters: 2}, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the test deployment:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	shared.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

// root returns a root directory name unique to the test (and suffix),
// living in cluster c ("c1" or "c2").
func root(t *testing.T, c, suffix string) string {
	t.Helper()
	prefix := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name()) + suffix + "-"
	return "/" + shared.RootIn(t, c, prefix)
}

// sharedClient dials the shared deployment.
func sharedClient(t *testing.T, opts ...client.Option) *client.Client {
	t.Helper()
	return shared.Client(t, opts...)
}
