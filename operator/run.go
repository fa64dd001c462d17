package operator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	versioned "github.com/cleavefs/cleave/operator/generated/clientset/versioned"
	cleavescheme "github.com/cleavefs/cleave/operator/generated/clientset/versioned/scheme"
	cleaveinformers "github.com/cleavefs/cleave/operator/generated/informers/externalversions"
)

// RunConfig configures Run: the controller and how the process reaches
// the API server and elects its leader.
type RunConfig struct {
	Config

	// Kubeconfig is a kubeconfig file; "" means the in-cluster
	// configuration of a pod (its service account).
	Kubeconfig string

	// Namespace restricts the operator to the stores of one namespace; ""
	// watches every namespace.
	Namespace string

	// LeaseNamespace and LeaseName name the Lease of leader election.
	// Defaults: the pod's namespace (POD_NAMESPACE, else "default") and
	// "cleave-operator".
	LeaseNamespace, LeaseName string

	// Identity is this process's name in the Lease. Default: the host name.
	Identity string

	// Workers is the number of stores synced at once. Default 2.
	Workers int

	// Resync is the informers' full resync period. Default 5m.
	Resync time.Duration
}

// fill sets RunConfig's defaults.
func (rc *RunConfig) fill() {
	if rc.LeaseNamespace == "" {
		rc.LeaseNamespace = os.Getenv("POD_NAMESPACE")
	}
	if rc.LeaseNamespace == "" {
		rc.LeaseNamespace = "default"
	}
	if rc.LeaseName == "" {
		rc.LeaseName = "cleave-operator"
	}
	if rc.Identity == "" {
		rc.Identity, _ = os.Hostname()
	}
	if rc.Workers <= 0 {
		rc.Workers = 2
	}
	if rc.Resync <= 0 {
		rc.Resync = 5 * time.Minute
	}
}

// Run runs the operator until ctx is done: it sends klog's output (what
// client-go logs) to rc.Logger, connects to the API server, and runs the
// controller while it holds the Lease. Losing the Lease ends Run with an
// error, so that the process restarts as a candidate.
func Run(parent context.Context, rc RunConfig) error {
	rc.fill()
	if err := rc.Config.Validate(); err != nil {
		return err
	}
	klog.SetSlogLogger(rc.Logger.With("component", "client-go"))
	restCfg, err := restConfig(rc.Kubeconfig)
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	cleave, err := versioned.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, rc.LeaseNamespace, rc.LeaseName,
		kube.CoreV1(), kube.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: rc.Identity})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var leading atomic.Bool
	done := make(chan error, 1)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: lock, ReleaseOnCancel: true, Name: rc.LeaseName,
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) {
				leading.Store(true)
				rc.Logger.Info("leading", "lease", rc.LeaseNamespace+"/"+rc.LeaseName, "identity", rc.Identity)
				done <- runController(lctx, rc, kube, cleave)
				cancel() // a controller that failed gives the lease up
			},
			OnStoppedLeading: func() { rc.Logger.Info("not leading", "identity", rc.Identity) },
		},
	})
	if err != nil {
		return err
	}
	le.Run(ctx) // returns when ctx is done or the lease is lost; either cancels the leader's context
	if !leading.Load() {
		return nil
	}
	if err := <-done; err != nil {
		return err
	}
	if parent.Err() == nil {
		return errors.New("operator: lost the leader lease")
	}
	return nil
}

// runController starts the informers and runs the controller until ctx is
// done.
func runController(ctx context.Context, rc RunConfig, kube kubernetes.Interface, cleave versioned.Interface) error {
	utilruntime.Must(cleavescheme.AddToScheme(scheme.Scheme))
	// Only the objects of stores are cached: every one carries LabelStore.
	ours := kubeinformers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = LabelStore })
	kubeInf := kubeinformers.NewSharedInformerFactoryWithOptions(kube, rc.Resync, kubeinformers.WithNamespace(rc.Namespace), ours)
	cleaveInf := cleaveinformers.NewSharedInformerFactoryWithOptions(cleave, rc.Resync, cleaveinformers.WithNamespace(rc.Namespace))
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "cleave-operator"})
	c, err := NewController(rc.Config, kube, cleave,
		cleaveInf.Cleave().V1alpha1().CleaveStores(), kubeInf.Apps().V1().StatefulSets(),
		kubeInf.Core().V1().Services(), kubeInf.Policy().V1().PodDisruptionBudgets(), recorder)
	if err != nil {
		return err
	}
	kubeInf.Start(ctx.Done())
	cleaveInf.Start(ctx.Done())
	defer kubeInf.Shutdown()
	defer cleaveInf.Shutdown()
	return c.Run(ctx, rc.Workers)
}

// restConfig loads the kubeconfig file, or the in-cluster configuration
// if path is "".
func restConfig(path string) (*rest.Config, error) {
	if path == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster configuration (give --kubeconfig outside a pod): %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}
