package operator

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	klabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"

	cleavev1 "github.com/cleavefs/cleave/operator/apis/cleave/v1alpha1"
)

// adminTimeout bounds the calls of one sync to the routers.
const adminTimeout = 10 * time.Second

// scale asks the routers for their status and takes the next step of a
// split if one is due (decideSplit), filling in ob. Routers that cannot be
// reached are not an error of the sync: the status says so, and the next
// sync tries again.
func (c *Controller) scale(ctx context.Context, sh *shape, ob *observation, key cache.ObjectName) error {
	s := sh.store
	if ob.routersReady == 0 {
		return nil
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	cred, err := c.credentials(ctx, s)
	if err != nil {
		ob.statusErr = err
		return nil
	}
	admin, err := c.cfg.Dial(ctx, sh.routerAddrs(), cred)
	if err != nil {
		ob.statusErr = err
		return nil
	}
	defer admin.Close()
	if ob.status, err = admin.Status(ctx); err != nil {
		ob.status, ob.statusErr = nil, err
		return nil
	}
	ob.replacing = c.replaceWiped(parent, s, admin, ob.status)
	for _, p := range missing(sh, ob.status) {
		sh.clusters = append(sh.clusters, p)
		if err := c.ensureCluster(ctx, sh, p); err != nil {
			return err
		}
	}
	c.mu.Lock()
	prev := c.samples[key]
	if prev == nil {
		prev = map[string]opsSample{}
		c.samples[key] = prev
	}
	hot := overThreshold(s.Spec.AutoSplit, ob.status, prev, time.Now())
	c.mu.Unlock()
	if n := int32(len(ob.status.Clusters)); n > s.Spec.Clusters && s.Spec.AutoSplit == nil {
		c.recorder.Eventf(s, corev1.EventTypeWarning, ReasonNoMerge, "spec.clusters is %d but %d clusters own a range; clusters never merge", s.Spec.Clusters, n)
	}
	ob.choice = decideSplit(sh, ob.status, ob.ready, hot)
	switch ch := ob.choice; {
	case ch.Plan != nil:
		sh.clusters = append(sh.clusters, *ch.Plan)
		if err := c.ensureCluster(ctx, sh, *ch.Plan); err != nil {
			return err
		}
		c.recorder.Eventf(s, corev1.EventTypeNormal, ReasonSplitPlanned, "created cluster %s to split %s; the split starts once its %d pods are ready", ch.Plan.ID, ch.Plan.Parent, sh.replicas)
	case ch.Request != nil:
		rec, err := admin.Split(ctx, *ch.Request)
		if err != nil {
			c.recorder.Eventf(s, corev1.EventTypeWarning, ReasonSplitFailed, "split of %s into %s: %v", ch.Request.Cluster, ch.Request.NewCluster, err)
			return fmt.Errorf("split %s into %s: %w", ch.Request.Cluster, ch.Request.NewCluster, err)
		}
		c.recorder.Eventf(s, corev1.EventTypeNormal, ReasonSplitRequested, "split %d of %s into %s requested (%s)", rec.ID, rec.Cluster, rec.NewCluster, rec.Phase)
	case ch.Drop != "":
		if err := c.dropCluster(ctx, s, ch.Drop); err != nil {
			return err
		}
		c.recorder.Eventf(s, corev1.EventTypeWarning, ReasonSplitAbandoned, "the routers abandoned the split into %s; its StatefulSet and volumes are deleted and a new cluster will be planned", ch.Drop)
	}
	return nil
}

// dropCluster deletes a pending cluster's StatefulSet, Service, PDB and
// volumes: its nodes joined nothing that survives the abandoned split.
func (c *Controller) dropCluster(ctx context.Context, s *cleavev1.CleaveStore, id string) error {
	name, del := clusterName(s, id), metav1.DeleteOptions{}
	gone := func(err error) bool { return err == nil || apierrors.IsNotFound(err) }
	if err := c.kube.AppsV1().StatefulSets(s.Namespace).Delete(ctx, name, del); !gone(err) {
		return err
	}
	if err := c.kube.CoreV1().Services(s.Namespace).Delete(ctx, name, del); !gone(err) {
		return err
	}
	if err := c.kube.PolicyV1().PodDisruptionBudgets(s.Namespace).Delete(ctx, name, del); !gone(err) {
		return err
	}
	sel := klabels.SelectorFromSet(selectorLabels(s, "node", id)).String()
	if err := c.kube.CoreV1().PersistentVolumeClaims(s.Namespace).DeleteCollection(ctx, del, metav1.ListOptions{LabelSelector: sel}); !gone(err) {
		return err
	}
	return nil
}

// credentials reads what the operator presents to s's routers from the
// secrets s names.
func (c *Controller) credentials(ctx context.Context, s *cleavev1.CleaveStore) (Credentials, error) {
	var cred Credentials
	if name := s.Spec.AuthSecretName; name != "" {
		sec, err := c.kube.CoreV1().Secrets(s.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return cred, fmt.Errorf("auth secret: %w", err)
		}
		tok, ok := sec.Data["token"]
		if !ok || len(tok) == 0 {
			return cred, fmt.Errorf("auth secret %s has no key \"token\"", name)
		}
		cred.Token = string(tok)
	}
	if name := s.Spec.TLSSecretName; name != "" {
		sec, err := c.kube.CoreV1().Secrets(s.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return cred, fmt.Errorf("tls secret: %w", err)
		}
		if cred.TLS, err = tlsFromCA(sec.Data["ca.crt"]); err != nil {
			return cred, fmt.Errorf("tls secret %s: %w", name, err)
		}
	}
	return cred, nil
}
