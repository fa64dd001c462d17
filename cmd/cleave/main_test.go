package main

import (
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/cleavefs/cleave/internal/testcluster"
)

var (
	deployOnce sync.Once
	deployed   *testcluster.Deployment
	deployDir  string
	deployErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if deployed != nil {
		deployed.Close()
	}
	if deployDir != "" {
		os.RemoveAll(deployDir)
	}
	os.Exit(code)
}

// deployment returns the real in-process deployment (2 clusters of 3
// nodes and a router) shared by the CLI tests, starting it on first use.
// Each test works under its own roots (see testRoot).
func deployment(t *testing.T) *testcluster.Deployment {
	t.Helper()
	deployOnce.Do(func() {
		deployDir, deployErr = os.MkdirTemp("", "cleave-cli-test")
		if deployErr == nil {
			deployed, deployErr = testcluster.New(testcluster.Options{Clusters: 2}, deployDir)
		}
	})
	if deployErr != nil {
		t.Fatalf("test deployment: %v", deployErr)
	}
	return deployed
}

// testRoot returns a root directory unique to the test, in cluster c.
func testRoot(t *testing.T, c string) string {
	t.Helper()
	return "/" + deployment(t).RootIn(t, c, strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())+"-")
}
