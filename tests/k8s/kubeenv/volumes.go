package kubeenv

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// mount is a volume as a container sees it (path) and where it is on the
// host (dir).
type mount struct{ path, dir string }

// rewritePath rewrites s, or the value after the first '=' of s (a flag
// such as --data=/var/lib/x), when it is a mount path or under one, to
// the host directory: processes share the host's file system, so a
// volume cannot appear at its mount path. mounts are longest path first.
func rewritePath(s string, mounts []mount) string {
	prefix, value := "", s
	if i := strings.IndexByte(s, '='); i >= 0 && !strings.HasPrefix(s, "/") {
		prefix, value = s[:i+1], s[i+1:]
	}
	for _, m := range mounts {
		if value == m.path || strings.HasPrefix(value, strings.TrimSuffix(m.path, "/")+"/") {
			return prefix + m.dir + value[len(m.path):]
		}
	}
	return s
}

// volumes makes the pod's volumes: a PersistentVolumeClaim is the
// directory of its bound volume (waiting for the binding), a Secret or a
// ConfigMap is a directory of its keys, a projected volume (the service
// account's token, CA and namespace) a directory of its files, anything
// else (emptyDir) an empty directory of the pod's that goes with it. It returns the mounts of every container's volumeMounts.
func (r *podRun) volumes() ([]mount, error) {
	dirs := map[string]string{}
	for _, v := range r.pod.Spec.Volumes {
		dir := filepath.Join(r.dir, v.Name)
		var err error
		switch {
		case v.PersistentVolumeClaim != nil:
			dir, err = r.claimDir(v.PersistentVolumeClaim.ClaimName)
		case v.Secret != nil || v.ConfigMap != nil:
			err = r.writeKeys(dir, v)
		case v.Projected != nil:
			err = r.writeProjected(dir, v.Projected)
		default:
			err = os.MkdirAll(dir, 0o755)
		}
		if err != nil {
			return nil, fmt.Errorf("volume %s: %w", v.Name, err)
		}
		dirs[v.Name] = dir
	}
	var mounts []mount
	for _, c := range r.pod.Spec.Containers {
		for _, vm := range c.VolumeMounts {
			dir, ok := dirs[vm.Name]
			if !ok {
				return nil, fmt.Errorf("container %s mounts volume %q, which the pod does not have", c.Name, vm.Name)
			}
			mounts = append(mounts, mount{path: vm.MountPath, dir: filepath.Join(dir, vm.SubPath)})
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].path) > len(mounts[j].path) })
	return mounts, nil
}

// claimDir waits until the claim is bound and returns its volume's
// directory.
func (r *podRun) claimDir(claim string) (string, error) {
	ctx, cancel := context.WithTimeout(r.ctx, 2*time.Minute)
	defer cancel()
	for {
		dir, err := r.k.e.claimPath(ctx, r.pod.Namespace, claim)
		if err == nil {
			return dir, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("claim %s not bound: %v", claim, err)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// writeKeys writes each key of the volume's Secret or ConfigMap as a file
// of dir.
func (r *podRun) writeKeys(dir string, v corev1.Volume) error {
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	files := map[string][]byte{}
	if v.Secret != nil {
		s, err := r.k.e.Client.CoreV1().Secrets(r.pod.Namespace).Get(ctx, v.Secret.SecretName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		files = s.Data
	} else {
		cm, err := r.k.e.Client.CoreV1().ConfigMaps(r.pod.Namespace).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for k, val := range cm.Data {
			files[k] = []byte(val)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// claimPath returns the host directory of the volume bound to the claim.
func (e *Env) claimPath(ctx context.Context, ns, claim string) (string, error) {
	pvc, err := e.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, claim, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.VolumeName == "" {
		return "", fmt.Errorf("claim %s/%s is %s", ns, claim, pvc.Status.Phase)
	}
	pv, err := e.Client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if pv.Spec.HostPath == nil {
		return "", fmt.Errorf("volume %s of claim %s/%s is not a kubeenv volume", pv.Name, ns, claim)
	}
	return pv.Spec.HostPath.Path, nil
}

// VolumeDir returns the host directory of the volume bound to the claim
// ns/claim: it outlives the pods that mount it and goes when the claim is
// deleted.
func (e *Env) VolumeDir(ctx context.Context, ns, claim string) (string, error) {
	return e.claimPath(ctx, ns, claim)
}

// claimVolumeName is the PersistentVolume the kubelet makes for a claim.
func claimVolumeName(uid types.UID) string { return "kubeenv-" + string(uid) }

// claimDirFor is the host directory of a claim's volume: per claim UID, so
// a claim made again under the same name starts empty.
func (e *Env) claimDirFor(pvc *corev1.PersistentVolumeClaim) string {
	return filepath.Join(e.Dir, "volumes", pvc.Namespace, pvc.Name+"-"+string(pvc.UID)[:8])
}

// syncClaim provisions a pending claim: a directory and a
// PersistentVolume pre-bound to the claim, which the controller manager's
// volume binder then binds.
func (k *kubelet) syncClaim(o any) {
	pvc, ok := o.(*corev1.PersistentVolumeClaim)
	if !ok || pvc.DeletionTimestamp != nil || pvc.Spec.VolumeName != "" ||
		pvc.Status.Phase != "" && pvc.Status.Phase != corev1.ClaimPending {
		return
	}
	dir := k.e.claimDirFor(pvc)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		k.e.t.Logf("kubeenv: claim %s/%s: %v", pvc.Namespace, pvc.Name, err)
		return
	}
	size, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if !ok {
		size = resource.MustParse("1Gi")
	}
	modes := pvc.Spec.AccessModes
	if len(modes) == 0 {
		modes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	class := ""
	if pvc.Spec.StorageClassName != nil {
		class = *pvc.Spec.StorageClassName
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: claimVolumeName(pvc.UID)},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes:                   modes,
			StorageClassName:              class,
			VolumeMode:                    pvc.Spec.VolumeMode,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef: &corev1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID,
			},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir}},
		},
	}
	ctx, cancel := context.WithTimeout(k.ctx, 10*time.Second)
	defer cancel()
	if _, err := k.e.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil &&
		!apierrors.IsAlreadyExists(err) && k.ctx.Err() == nil {
		k.e.t.Logf("kubeenv: volume for claim %s/%s: %v", pvc.Namespace, pvc.Name, err)
	}
}

// claimGone deletes a deleted claim's volume and its directory.
func (k *kubelet) claimGone(o any) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	pvc, ok := o.(*corev1.PersistentVolumeClaim)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(k.ctx, 10*time.Second)
	defer cancel()
	err := k.e.Client.CoreV1().PersistentVolumes().Delete(ctx, claimVolumeName(pvc.UID), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) && k.ctx.Err() == nil {
		k.e.t.Logf("kubeenv: deleting the volume of claim %s/%s: %v", pvc.Namespace, pvc.Name, err)
	}
	if err := os.RemoveAll(k.e.claimDirFor(pvc)); err != nil {
		k.e.t.Logf("kubeenv: deleting the directory of claim %s/%s: %v", pvc.Namespace, pvc.Name, err)
	}
}

// writeProjected writes a projected volume's sources into dir: a service
// account token requested for the pod (bound to it, as the kubelet's),
// ConfigMap and Secret keys, and downward API fields.
func (r *podRun) writeProjected(dir string, v *corev1.ProjectedVolumeSource) error {
	ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
	defer cancel()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := map[string][]byte{}
	for _, src := range v.Sources {
		var err error
		switch {
		case src.ServiceAccountToken != nil:
			err = r.projectToken(ctx, src.ServiceAccountToken, files)
		case src.ConfigMap != nil:
			err = r.projectConfigMap(ctx, src.ConfigMap, files)
		case src.Secret != nil:
			err = r.projectSecret(ctx, src.Secret, files)
		case src.DownwardAPI != nil:
			for _, it := range src.DownwardAPI.Items {
				if it.FieldRef == nil {
					return fmt.Errorf("projected downward API item %s: kubeenv resolves only fieldRef", it.Path)
				}
				v, ferr := r.field(it.FieldRef.FieldPath)
				if ferr != nil {
					return ferr
				}
				files[it.Path] = []byte(v)
			}
		}
		if err != nil {
			return err
		}
	}
	for name, b := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// projectToken asks the API server for a token of the pod's service
// account, bound to the pod.
func (r *podRun) projectToken(ctx context.Context, src *corev1.ServiceAccountTokenProjection, files map[string][]byte) error {
	sa := r.pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: src.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: r.pod.Name, UID: r.pod.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	tok, err := r.k.e.Client.CoreV1().ServiceAccounts(r.pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("token of service account %s: %w", sa, err)
	}
	files[src.Path] = []byte(tok.Status.Token)
	return nil
}

// projectConfigMap adds a ConfigMap's keys (its items, or all) to files.
func (r *podRun) projectConfigMap(ctx context.Context, src *corev1.ConfigMapProjection, files map[string][]byte) error {
	return projectObject("configmap", src.Name, src.Optional, src.Items, files, func() (map[string][]byte, error) {
		cm, err := r.k.e.Client.CoreV1().ConfigMaps(r.pod.Namespace).Get(ctx, src.Name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		data := map[string][]byte{}
		for k, v := range cm.Data {
			data[k] = []byte(v)
		}
		return data, nil
	})
}

// projectSecret adds a Secret's keys (its items, or all) to files.
func (r *podRun) projectSecret(ctx context.Context, src *corev1.SecretProjection, files map[string][]byte) error {
	return projectObject("secret", src.Name, src.Optional, src.Items, files, func() (map[string][]byte, error) {
		sec, err := r.k.e.Client.CoreV1().Secrets(r.pod.Namespace).Get(ctx, src.Name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return sec.Data, nil
	})
}

// projectObject adds the keys get returns to files (projectKeys); a
// missing object is nothing to add when optional, else an error naming it.
func projectObject(kind, name string, optional *bool, items []corev1.KeyToPath, files map[string][]byte, get func() (map[string][]byte, error)) error {
	data, err := get()
	if apierrors.IsNotFound(err) && optional != nil && *optional {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", kind, name, err)
	}
	return projectKeys(data, items, files)
}

// projectKeys adds data's keys to files: the items' keys at their paths,
// or every key under its own name without items.
func projectKeys(data map[string][]byte, items []corev1.KeyToPath, files map[string][]byte) error {
	if len(items) == 0 {
		maps.Copy(files, data)
		return nil
	}
	for _, it := range items {
		b, ok := data[it.Key]
		if !ok {
			return fmt.Errorf("no key %q", it.Key)
		}
		files[it.Path] = b
	}
	return nil
}
