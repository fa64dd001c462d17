package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cleavefs/cleave/operator"
)

// TestOperatorFlags: `cleave operator` turns its flags (and CLEAVE_*
// variables) into the operator's configuration, and names a bad value.
func TestOperatorFlags(t *testing.T) {
	parse := func(args ...string) (operator.RunConfig, error) {
		var got operator.RunConfig
		err := execute(newOperatorCmd(func(_ context.Context, rc operator.RunConfig) error { got = rc; return nil }), args...)
		return got, err
	}
	rc, err := parse("--kubeconfig", "/k", "--namespace", "prod", "--image", "cleave:v9", "--workers", "4", "--status-interval", "3s")
	if err != nil {
		t.Fatal(err)
	}
	if rc.Kubeconfig != "/k" || rc.Namespace != "prod" || rc.Image != "cleave:v9" || rc.Workers != 4 ||
		rc.StatusInterval != 3*time.Second || rc.ClusterDomain != "cluster.local" || rc.LeaseName != "cleave-operator" || rc.Dial == nil {
		t.Fatalf("config %+v", rc)
	}
	t.Setenv("CLEAVE_NAMESPACE", "from-env")
	if rc, err = parse(); err != nil || rc.Namespace != "from-env" {
		t.Fatalf("CLEAVE_NAMESPACE: namespace %q, err %v", rc.Namespace, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--workers", "0"}, "--workers 0: must be at least 1"},
		{[]string{"--cluster-domain", ".local."}, `ClusterDomain ".local."`},
		{[]string{"--status-interval", "0s"}, "StatusInterval 0s: must be positive"},
		{[]string{"--log-format", "xml"}, `--log-format "xml"`},
	} {
		if _, err := parse(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}
