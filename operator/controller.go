package operator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	klabels "k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	policyinformers "k8s.io/client-go/informers/policy/v1"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	policylisters "k8s.io/client-go/listers/policy/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	cleavev1 "github.com/cleavefs/cleave/operator/apis/cleave/v1alpha1"
	versioned "github.com/cleavefs/cleave/operator/generated/clientset/versioned"
	informers "github.com/cleavefs/cleave/operator/generated/informers/externalversions/cleave/v1alpha1"
	listers "github.com/cleavefs/cleave/operator/generated/listers/cleave/v1alpha1"
)

// Event reasons the controller records on a CleaveStore.
const (
	ReasonCreated        = "Created"        // an object of the store was created
	ReasonUpdated        = "Updated"        // an object was brought back to the spec
	ReasonResourceExists = "ResourceExists" // an object of that name exists and is not the store's
	ReasonSpecNotApplied = "SpecNotApplied" // a spec field fixed at creation was changed
	ReasonSplitPlanned   = "SplitPlanned"   // a new cluster's StatefulSet was created for a split
	ReasonSplitRequested = "SplitRequested" // the routers were asked to split
	ReasonSplitFailed    = "SplitFailed"    // asking for the split failed (retried)
	ReasonSplitAbandoned = "SplitAbandoned" // the routers abandoned a split; its cluster is dropped
	ReasonNoMerge        = "NoMerge"        // spec.clusters is below the clusters there are
	ReasonInvalidSpec    = "InvalidSpec"    // the spec is refused; nothing is done until it changes
	ReasonNodeReplacing  = "NodeReplacing"  // a node that lost its volume is being replaced under a new id
	ReasonNodeReplaced   = "NodeReplaced"   // that replacement is done
)

// Controller keeps every CleaveStore's objects and splits in line with its
// spec. Build it with NewController; Run runs its workers.
type Controller struct {
	cfg      Config
	log      *slog.Logger
	kube     kubernetes.Interface
	cleave   versioned.Interface
	stores   listers.CleaveStoreLister
	sets     appslisters.StatefulSetLister
	services corelisters.ServiceLister
	pdbs     policylisters.PodDisruptionBudgetLister
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[cache.ObjectName]
	recorder record.EventRecorder

	mu      sync.Mutex                                // guards samples
	samples map[cache.ObjectName]map[string]opsSample // per store, per cluster: the last request counters
}

// NewController returns a controller watching stores through the given
// informers and recording events with recorder. cfg must be valid.
func NewController(cfg Config, kube kubernetes.Interface, cleave versioned.Interface,
	stores informers.CleaveStoreInformer, sets appsinformers.StatefulSetInformer,
	services coreinformers.ServiceInformer, pdbs policyinformers.PodDisruptionBudgetInformer,
	recorder record.EventRecorder) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Controller{
		cfg: cfg, log: cfg.Logger.With("component", "operator"), kube: kube, cleave: cleave,
		stores: stores.Lister(), sets: sets.Lister(), services: services.Lister(), pdbs: pdbs.Lister(),
		synced: []cache.InformerSynced{stores.Informer().HasSynced, sets.Informer().HasSynced,
			services.Informer().HasSynced, pdbs.Informer().HasSynced},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[cache.ObjectName](),
			workqueue.TypedRateLimitingQueueConfig[cache.ObjectName]{Name: "cleavestores"}),
		recorder: recorder,
		samples:  map[cache.ObjectName]map[string]opsSample{},
	}
	_, err := stores.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, obj any) { c.enqueue(obj) },
	})
	if err != nil {
		return nil, err
	}
	owned := cache.ResourceEventHandlerFuncs{
		AddFunc: c.enqueueOwner,
		UpdateFunc: func(old, obj any) {
			if old.(metav1.Object).GetResourceVersion() != obj.(metav1.Object).GetResourceVersion() {
				c.enqueueOwner(obj)
			}
		},
		DeleteFunc: c.enqueueOwner,
	}
	for _, inf := range []cache.SharedIndexInformer{sets.Informer(), services.Informer(), pdbs.Informer()} {
		if _, err := inf.AddEventHandler(owned); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Controller) enqueue(obj any) {
	key, err := cache.ObjectToName(obj)
	if err != nil {
		utilruntime.HandleError(err)
		return
	}
	c.queue.Add(key)
}

// enqueueOwner enqueues the CleaveStore that controls obj, if any.
func (c *Controller) enqueueOwner(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	o, ok := obj.(metav1.Object)
	if !ok {
		return
	}
	ref := metav1.GetControllerOf(o)
	if ref == nil || ref.Kind != "CleaveStore" || ref.APIVersion != cleavev1.SchemeGroupVersion.String() {
		return
	}
	c.queue.Add(cache.ObjectName{Namespace: o.GetNamespace(), Name: ref.Name})
}

// Run waits for the informers' caches, then syncs stores with workers
// goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) error {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	c.log.Info("waiting for informer caches")
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return errors.New("operator: informer caches did not sync")
	}
	c.log.Info("starting workers", "count", workers)
	for range workers {
		go wait.UntilWithContext(ctx, func(ctx context.Context) {
			for c.processNextWorkItem(ctx) {
			}
		}, time.Second)
	}
	<-ctx.Done()
	c.log.Info("stopping workers")
	return nil
}

// processNextWorkItem syncs one store. A failed sync is retried with the
// queue's backoff; a good one is synced again after StatusInterval (or
// SplitInterval while splitting), since the routers' status changes
// without any Kubernetes event.
func (c *Controller) processNextWorkItem(ctx context.Context) bool {
	key, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(key)
	again, err := c.syncHandler(ctx, key)
	if err != nil {
		c.log.Warn("sync failed; retrying", "store", key.String(), "err", err)
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	if again > 0 {
		c.queue.AddAfter(key, again)
	}
	return true
}

// syncHandler brings the store named key in line with its spec and
// writes its status, and returns when to look again (0: not at all, the
// store is gone). It is level-driven: each call recomputes everything from
// what it observes, and writes nothing when nothing differs.
func (c *Controller) syncHandler(ctx context.Context, key cache.ObjectName) (time.Duration, error) {
	store, err := c.stores.CleaveStores(key.Namespace).Get(key.Name)
	if apierrors.IsNotFound(err) {
		c.mu.Lock()
		delete(c.samples, key) // its objects go with it: they are owned
		c.mu.Unlock()
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	s := withDefaults(store)
	if err := validateSpec(s); err != nil {
		return c.refuse(ctx, store, err)
	}
	sh, err := c.observe(s)
	if err != nil {
		return 0, err
	}
	if err := c.ensureAll(ctx, sh); err != nil {
		return 0, err
	}
	ob := observation{ready: map[string]int32{}}
	if rs, err := c.sets.StatefulSets(s.Namespace).Get(routerName(s)); err == nil {
		ob.routersReady = rs.Status.ReadyReplicas
	}
	for _, cl := range sh.clusters {
		if cs, err := c.sets.StatefulSets(s.Namespace).Get(clusterName(s, cl.ID)); err == nil {
			ob.ready[cl.ID] = cs.Status.ReadyReplicas
		}
	}
	if err := c.scale(ctx, sh, &ob, key); err != nil {
		return 0, err
	}
	next := newStatus(sh, store.Status, ob)
	if !equality.Semantic.DeepEqual(store.Status, next) {
		up := store.DeepCopy()
		up.Status = next
		if _, err := c.cleave.CleaveV1alpha1().CleaveStores(s.Namespace).UpdateStatus(ctx, up, metav1.UpdateOptions{}); err != nil {
			return 0, fmt.Errorf("update status of %s: %w", key, err)
		}
	}
	if len(next.SplitsInProgress) > 0 || ob.choice != (splitChoice{}) || len(ob.replacing) > 0 {
		return c.cfg.SplitInterval, nil
	}
	return c.cfg.StatusInterval, nil
}

// refuse records why store's spec is not acted on, in an event and the
// Ready condition, and changes nothing else. A spec change syncs again.
func (c *Controller) refuse(ctx context.Context, store *cleavev1.CleaveStore, why error) (time.Duration, error) {
	c.recorder.Event(store, corev1.EventTypeWarning, ReasonInvalidSpec, why.Error())
	next := *store.Status.DeepCopy()
	meta.SetStatusCondition(&next.Conditions, metav1.Condition{Type: cleavev1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: ReasonInvalidSpec, Message: why.Error(), ObservedGeneration: store.Generation})
	next.ObservedGeneration = store.Generation
	if equality.Semantic.DeepEqual(store.Status, next) {
		return 0, nil
	}
	up := store.DeepCopy()
	up.Status = next
	if _, err := c.cleave.CleaveV1alpha1().CleaveStores(store.Namespace).UpdateStatus(ctx, up, metav1.UpdateOptions{}); err != nil {
		return 0, fmt.Errorf("update status of %s/%s: %w", store.Namespace, store.Name, err)
	}
	return 0, nil
}

// observe reads the store's StatefulSets and decides its shape, warning
// (once per sync, in an event) about spec fields it does not apply.
func (c *Controller) observe(s *cleavev1.CleaveStore) (*shape, error) {
	router, err := c.sets.StatefulSets(s.Namespace).Get(routerName(s))
	switch {
	case apierrors.IsNotFound(err):
		router = nil
	case err != nil:
		return nil, err
	case !metav1.IsControlledBy(router, s):
		return nil, c.notOurs(s, "StatefulSet", router.Name)
	}
	sel := klabels.SelectorFromSet(selectorLabels(s, "node", ""))
	all, err := c.sets.StatefulSets(s.Namespace).List(sel)
	if err != nil {
		return nil, err
	}
	var clusters []*appsv1.StatefulSet
	for _, st := range all {
		if metav1.IsControlledBy(st, s) {
			clusters = append(clusters, st)
		}
	}
	sh, warnings, err := observeShape(s, c.cfg.Image, c.cfg.ClusterDomain, router, clusters)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		c.recorder.Event(s, corev1.EventTypeWarning, ReasonSpecNotApplied, w)
	}
	return sh, nil
}

// notOurs records and returns the error of an object the store would own
// that exists under someone else.
func (c *Controller) notOurs(s *cleavev1.CleaveStore, kind, name string) error {
	msg := fmt.Sprintf("%s %s already exists and is not managed by CleaveStore %s", kind, name, s.Name)
	c.recorder.Event(s, corev1.EventTypeWarning, ReasonResourceExists, msg)
	return errors.New(msg)
}

// ensureAll creates or updates every object of the store but the
// StatefulSets of clusters not yet planned.
func (c *Controller) ensureAll(ctx context.Context, sh *shape) error {
	s := sh.store
	if err := c.ensureService(ctx, s, headlessService(s, routerName(s), "router", "")); err != nil {
		return err
	}
	if err := c.ensureService(ctx, s, clientService(s)); err != nil {
		return err
	}
	if err := c.ensurePDB(ctx, s, pdb(s, routerName(s), "router", "", sh.routers)); err != nil {
		return err
	}
	if err := c.ensureStatefulSet(ctx, s, routerStatefulSet(sh)); err != nil {
		return err
	}
	for _, cl := range sh.clusters {
		if err := c.ensureCluster(ctx, sh, cl); err != nil {
			return err
		}
	}
	return nil
}

// ensureCluster creates or updates cluster cl's Service, PDB and
// StatefulSet.
func (c *Controller) ensureCluster(ctx context.Context, sh *shape, cl clusterPlan) error {
	s, set := sh.store, clusterName(sh.store, cl.ID)
	if err := c.ensureService(ctx, s, headlessService(s, set, "node", cl.ID)); err != nil {
		return err
	}
	if err := c.ensurePDB(ctx, s, pdb(s, set, "node", cl.ID, sh.replicas)); err != nil {
		return err
	}
	return c.ensureStatefulSet(ctx, s, clusterStatefulSet(sh, cl))
}

func (c *Controller) ensureStatefulSet(ctx context.Context, s *cleavev1.CleaveStore, want *appsv1.StatefulSet) error {
	api := c.kube.AppsV1().StatefulSets(s.Namespace)
	return ensure(ctx, c, s, "StatefulSet", want, c.sets.StatefulSets(s.Namespace).Get, api.Create, api.Update,
		func(have *appsv1.StatefulSet) {
			have.Spec.Replicas, have.Spec.Template, have.Spec.UpdateStrategy = want.Spec.Replicas, want.Spec.Template, want.Spec.UpdateStrategy
		})
}

func (c *Controller) ensureService(ctx context.Context, s *cleavev1.CleaveStore, want *corev1.Service) error {
	api := c.kube.CoreV1().Services(s.Namespace)
	return ensure(ctx, c, s, "Service", want, c.services.Services(s.Namespace).Get, api.Create, api.Update,
		func(have *corev1.Service) {
			have.Spec.Ports, have.Spec.Selector, have.Spec.PublishNotReadyAddresses = want.Spec.Ports, want.Spec.Selector, want.Spec.PublishNotReadyAddresses
		})
}

func (c *Controller) ensurePDB(ctx context.Context, s *cleavev1.CleaveStore, want *policyv1.PodDisruptionBudget) error {
	api := c.kube.PolicyV1().PodDisruptionBudgets(s.Namespace)
	return ensure(ctx, c, s, "PodDisruptionBudget", want, c.pdbs.PodDisruptionBudgets(s.Namespace).Get, api.Create, api.Update,
		func(have *policyv1.PodDisruptionBudget) { have.Spec = want.Spec })
}
