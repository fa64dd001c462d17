package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cleavev1 "github.com/cleavefs/cleave/operator/apis/cleave/v1alpha1"
)

// object is a Kubernetes object the operator owns: a pointer that
// DeepCopy copies.
type object[T any] interface {
	metav1.Object
	*T
	DeepCopy() *T
}

// ensure makes the object named like want exist as want says: created if
// missing; if it exists, is the store's and its spec hash differs from
// want's, set to want by copy (which writes want's mutable spec into the
// copy of what exists) and updated. An object that exists and is not
// controlled by s is an error and an event. Nothing is written when the
// hashes match, which is what makes a sync with nothing to do write
// nothing.
func ensure[T any, P object[T]](ctx context.Context, c *Controller, s *cleavev1.CleaveStore, kind string, want P,
	get func(name string) (P, error),
	create func(context.Context, P, metav1.CreateOptions) (P, error),
	update func(context.Context, P, metav1.UpdateOptions) (P, error),
	copySpec func(have P)) error {
	hash, err := specHash(want)
	if err != nil {
		return err
	}
	ann := maps.Clone(want.GetAnnotations())
	if ann == nil {
		ann = map[string]string{}
	}
	ann[AnnotationSpecHash] = hash
	want.SetAnnotations(ann)

	have, err := get(want.GetName())
	if apierrors.IsNotFound(err) {
		if _, err := create(ctx, want, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create %s %s: %w", kind, want.GetName(), err)
		}
		c.recorder.Eventf(s, corev1.EventTypeNormal, ReasonCreated, "created %s %s", kind, want.GetName())
		return nil
	}
	if err != nil {
		return err
	}
	if !metav1.IsControlledBy(have, s) {
		return c.notOurs(s, kind, have.GetName())
	}
	if have.GetAnnotations()[AnnotationSpecHash] == hash {
		return nil
	}
	next := P(have.DeepCopy()) // never change the cache's copy
	copySpec(next)
	merged := maps.Clone(next.GetAnnotations())
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, ann)
	next.SetAnnotations(merged)
	labels := maps.Clone(next.GetLabels())
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, want.GetLabels())
	next.SetLabels(labels)
	if _, err := update(ctx, next, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update %s %s: %w", kind, want.GetName(), err)
	}
	c.recorder.Eventf(s, corev1.EventTypeNormal, ReasonUpdated, "updated %s %s to the spec", kind, want.GetName())
	return nil
}

// specHash is a hash of the object the operator wants, before its hash
// annotation is set.
func specHash(want any) (string, error) {
	b, err := json.Marshal(want)
	if err != nil {
		return "", fmt.Errorf("hash the desired object: %w", err)
	}
	h := fnv.New64a()
	h.Write(b)
	return fmt.Sprintf("%016x", h.Sum64()), nil
}
