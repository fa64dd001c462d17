package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/cleavefs/cleave/operator"
)

// operatorOpts are the flags of `cleave operator`.
type operatorOpts struct {
	kubeconfig     string
	namespace      string
	image          string
	clusterDomain  string
	leaseNamespace string
	leaseName      string
	workers        int
	statusInterval time.Duration
	logLevel       string
	logFormat      string
}

// newOperatorCmd returns `cleave operator`, which hands its configuration
// to run (operator.Run).
func newOperatorCmd(run func(context.Context, operator.RunConfig) error) *cobra.Command {
	var o operatorOpts
	cmd := &cobra.Command{
		Use:   "operator [--kubeconfig FILE] [--namespace NS] [--image IMAGE]",
		Short: "Run the Kubernetes operator that deploys and scales CleaveStores",
		Long: `Run the Kubernetes operator: for each CleaveStore (cleave.io/v1alpha1) it
creates the routers' and each cluster's StatefulSet, their headless
Services and PodDisruptionBudgets and a client Service, reports the
routers' status in the store's status, and splits clusters when the store
is scaled (kubectl scale cleavestore/NAME --replicas=N). Several replicas
may run: one leads, through a Lease, and the others wait. It serves until
SIGINT or SIGTERM. See docs/deploy.md.

Inside a pod it uses the pod's service account; elsewhere give --kubeconfig.
Every flag can also be set as CLEAVE_<FLAG> (e.g. CLEAVE_NAMESPACE); flags win.`,
		Args: cobra.NoArgs,
		RunE: serve(o.config, run),
	}
	def := operator.DefaultConfig()
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file; empty: the in-cluster configuration of the pod")
	f.StringVar(&o.namespace, "namespace", "", "manage the CleaveStores of this namespace only; empty: every namespace")
	f.StringVar(&o.image, "image", defaultImage(), "image of a store's pods when its spec.image is empty")
	f.StringVar(&o.clusterDomain, "cluster-domain", def.ClusterDomain, "the Kubernetes cluster's DNS domain, the end of every pod's DNS name")
	f.StringVar(&o.leaseNamespace, "lease-namespace", "", "namespace of the leader-election Lease; empty: $POD_NAMESPACE, else default")
	f.StringVar(&o.leaseName, "lease-name", "cleave-operator", "name of the leader-election Lease")
	f.IntVar(&o.workers, "workers", 2, "stores synced at once")
	f.DurationVar(&o.statusInterval, "status-interval", def.StatusInterval, "how often each store's status is refreshed from its routers when nothing else happens")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.logFormat, "log-format", "text", "text (key=value) or json (one object per line)")
	return cmd
}

// defaultImage is the image of this build: cleave:VERSION when the
// Makefile stamped a version, else cleave:latest.
func defaultImage() string {
	if version != "" {
		return "cleave:" + version
	}
	return "cleave:latest"
}

// config turns the flags into a validated operator.RunConfig.
func (o *operatorOpts) config(*cobra.Command) (operator.RunConfig, error) {
	logger, err := newLogger(o.logLevel, o.logFormat)
	if err != nil {
		return operator.RunConfig{}, err
	}
	if o.workers < 1 {
		return operator.RunConfig{}, usagef("--workers %d: must be at least 1", o.workers)
	}
	rc := operator.RunConfig{
		Config:     operator.DefaultConfig(),
		Kubeconfig: o.kubeconfig, Namespace: o.namespace,
		LeaseNamespace: o.leaseNamespace, LeaseName: o.leaseName, Workers: o.workers,
	}
	rc.Image, rc.ClusterDomain, rc.StatusInterval, rc.Logger = o.image, o.clusterDomain, o.statusInterval, logger
	return rc, rc.Validate()
}
