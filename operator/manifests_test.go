package operator

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clientscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	cleavev1 "github.com/cleavefs/cleave/operator/apis/cleave/v1alpha1"
)

const manifestsDir = "../manifests"

// manifests decodes every YAML document under manifests/ but the
// kustomization files with the real scheme (client-go's, the CRD types,
// cleave.io), strictly: an unknown field or kind fails. It returns the
// objects by "Kind name" and the kustomization files by directory.
func manifests(t *testing.T) (map[string]runtime.Object, map[string][]string) {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientscheme.AddToScheme, apiextv1.AddToScheme, cleavev1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	decoder := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
	objs := map[string]runtime.Object{}
	kusts := map[string][]string{}
	err := filepath.WalkDir(manifestsDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if d.Name() == "kustomization.yaml" {
			var k struct {
				APIVersion string   `json:"apiVersion"`
				Kind       string   `json:"kind"`
				Resources  []string `json:"resources"`
			}
			if err := yaml.UnmarshalStrict(b, &k, yaml.DisallowUnknownFields); err != nil {
				t.Errorf("%s: %v", path, err)
			}
			if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
				t.Errorf("%s: %s %s, want a kustomize.config.k8s.io/v1beta1 Kustomization", path, k.APIVersion, k.Kind)
			}
			kusts[filepath.Dir(path)] = k.Resources
			return nil
		}
		for i, doc := range bytes.Split(b, []byte("\n---")) {
			if len(bytes.TrimSpace(bytes.TrimPrefix(doc, []byte("---")))) == 0 {
				continue
			}
			obj, gvk, err := decoder.Decode(doc, nil, nil)
			if err != nil {
				t.Errorf("%s, document %d: %v", path, i+1, err)
				continue
			}
			name := obj.(interface{ GetName() string }).GetName()
			objs[gvk.Kind+" "+name] = obj
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return objs, kusts
}

// TestManifests: every manifest decodes with the real scheme; every
// kustomization names files and directories that exist; default combines
// crd, rbac and operator; the Deployment runs `cleave operator` as its
// ServiceAccount, which the bindings give the roles that exist; and the
// sample is a CleaveStore named demo.
func TestManifests(t *testing.T) {
	objs, kusts := manifests(t)
	for dir, res := range kusts {
		for _, r := range res {
			p := filepath.Join(dir, r)
			st, err := os.Stat(p)
			if err != nil {
				t.Errorf("%s/kustomization.yaml: resource %s: %v", dir, r, err)
			} else if st.IsDir() {
				if _, err := os.Stat(filepath.Join(p, "kustomization.yaml")); err != nil {
					t.Errorf("%s/kustomization.yaml: %s has no kustomization.yaml", dir, r)
				}
			}
		}
	}
	if got := kusts[filepath.Join(manifestsDir, "default")]; !slices.Equal(got, []string{"../crd", "../rbac", "../operator"}) {
		t.Errorf("default combines %v", got)
	}
	get := func(key string) runtime.Object {
		t.Helper()
		o, ok := objs[key]
		if !ok {
			t.Fatalf("no %s under manifests/ (have %v)", key, slices.Sorted(maps.Keys(objs)))
		}
		return o
	}
	dep := get("Deployment cleave-operator").(*appsv1.Deployment)
	pod := dep.Spec.Template.Spec
	sa := get("ServiceAccount " + pod.ServiceAccountName).(*corev1.ServiceAccount)
	if c := pod.Containers[0]; !slices.Equal(c.Command, []string{"cleave"}) || c.Args[0] != "operator" {
		t.Errorf("operator container runs %v %v", c.Command, c.Args)
	}
	if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("operator pod may run as root")
	}
	if sa.Namespace != dep.Namespace {
		t.Errorf("ServiceAccount in %s, Deployment in %s", sa.Namespace, dep.Namespace)
	}
	get("Namespace " + dep.Namespace)
	crb := get("ClusterRoleBinding cleave-operator").(*rbacv1.ClusterRoleBinding)
	get("ClusterRole " + crb.RoleRef.Name)
	rb := get("RoleBinding cleave-operator-leader-election").(*rbacv1.RoleBinding)
	get("Role " + rb.RoleRef.Name)
	for _, subs := range [][]rbacv1.Subject{crb.Subjects, rb.Subjects} {
		if len(subs) != 1 || subs[0].Kind != "ServiceAccount" || subs[0].Name != sa.Name || subs[0].Namespace != sa.Namespace {
			t.Errorf("binding subjects %+v, want the operator's ServiceAccount", subs)
		}
	}
	store := get("CleaveStore demo").(*cleavev1.CleaveStore)
	if store.Spec.Clusters != 2 || store.Spec.Routers != 3 || store.Spec.ReplicasPerCluster != 3 {
		t.Errorf("sample spec %+v", store.Spec)
	}
}

// TestRBACLeastPrivilege: the operator's roles grant exactly the verbs the
// controller, its informers, its event recorder and leader election use —
// the table below, which a change to what the controller does must change
// too.
func TestRBACLeastPrivilege(t *testing.T) {
	objs, _ := manifests(t)
	want := map[string][]string{
		"cleave.io/cleavestores":                 {"list", "watch"},
		"cleave.io/cleavestores/status":          {"update"},
		"apps/statefulsets":                      {"create", "delete", "list", "update", "watch"},
		"/services":                              {"create", "delete", "list", "update", "watch"},
		"policy/poddisruptionbudgets":            {"create", "delete", "list", "update", "watch"},
		"/persistentvolumeclaims":                {"deletecollection"},
		"/secrets":                               {"get"},
		"/events":                                {"create", "patch"},
		"coordination.k8s.io/leases (namespace)": {"create", "get", "update"},
	}
	got := map[string][]string{}
	add := func(rules []rbacv1.PolicyRule, suffix string) {
		for _, r := range rules {
			if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
				t.Errorf("unexpected rule %+v", r)
			}
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					k := g + "/" + res + suffix
					got[k] = append(got[k], r.Verbs...)
					slices.Sort(got[k])
				}
			}
		}
	}
	add(objs["ClusterRole cleave-operator"].(*rbacv1.ClusterRole).Rules, "")
	add(objs["Role cleave-operator-leader-election"].(*rbacv1.Role).Rules, " (namespace)")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("RBAC grants\n%v\nwant\n%v", got, want)
	}
}

// TestCRDMatchesTypes: the CRD under manifests/crd is CleaveStore's, with
// the scale subresource on spec.clusters, the status subresource, the
// printer columns, and a schema whose spec and status fields are the Go
// types' JSON fields (make verify-codegen checks it is the generator's
// output; this checks the generator was given the right markers).
func TestCRDMatchesTypes(t *testing.T) {
	objs, _ := manifests(t)
	crd, ok := objs["CustomResourceDefinition cleavestores.cleave.io"].(*apiextv1.CustomResourceDefinition)
	if !ok {
		t.Fatal("no CustomResourceDefinition cleavestores.cleave.io")
	}
	if crd.Spec.Group != cleavev1.GroupName || crd.Spec.Names.Kind != "CleaveStore" || crd.Spec.Scope != apiextv1.NamespaceScoped || len(crd.Spec.Versions) != 1 {
		t.Fatalf("CRD spec %+v", crd.Spec)
	}
	v := crd.Spec.Versions[0]
	if v.Name != "v1alpha1" || !v.Served || !v.Storage || v.Subresources == nil || v.Subresources.Status == nil {
		t.Fatalf("version %s served %v storage %v subresources %+v", v.Name, v.Served, v.Storage, v.Subresources)
	}
	sc := v.Subresources.Scale
	if sc == nil || sc.SpecReplicasPath != ".spec.clusters" || sc.StatusReplicasPath != ".status.replicas" || sc.LabelSelectorPath == nil || *sc.LabelSelectorPath != ".status.selector" {
		t.Fatalf("scale subresource %+v", sc)
	}
	var cols []string
	for _, c := range v.AdditionalPrinterColumns {
		cols = append(cols, c.Name)
	}
	if !slices.Equal(cols, []string{"Clusters", "Ready", "Routing", "Age"}) {
		t.Fatalf("printer columns %v", cols)
	}
	props := v.Schema.OpenAPIV3Schema.Properties
	for _, tc := range []struct {
		field string
		typ   reflect.Type
	}{
		{"spec", reflect.TypeFor[cleavev1.CleaveStoreSpec]()},
		{"status", reflect.TypeFor[cleavev1.CleaveStoreStatus]()},
		{"spec.autoSplit", reflect.TypeFor[cleavev1.AutoSplitSpec]()},
		{"spec.storage", reflect.TypeFor[cleavev1.StorageSpec]()},
		{"status.clusters", reflect.TypeFor[cleavev1.ClusterStatus]()},
		{"status.splitsInProgress", reflect.TypeFor[cleavev1.SplitProgress]()},
	} {
		schema, ok := lookup(props, tc.field)
		if !ok {
			t.Errorf("CRD schema has no %s", tc.field)
			continue
		}
		if schema.Items != nil {
			schema = *schema.Items.Schema
		}
		if got, want := slices.Sorted(maps.Keys(schema.Properties)), jsonFields(tc.typ); !slices.Equal(got, want) {
			t.Errorf("CRD %s fields %v, Go type %s has %v", tc.field, got, tc.typ, want)
		}
	}
}

// lookup follows a dotted path of properties.
func lookup(props map[string]apiextv1.JSONSchemaProps, path string) (apiextv1.JSONSchemaProps, bool) {
	var s apiextv1.JSONSchemaProps
	for part := range strings.SplitSeq(path, ".") {
		var ok bool
		if s, ok = props[part]; !ok {
			return s, false
		}
		props = s.Properties
		if s.Items != nil && s.Items.Schema != nil {
			props = s.Items.Schema.Properties
		}
	}
	return s, true
}

// jsonFields returns the JSON names of typ's fields, sorted.
func jsonFields(typ reflect.Type) []string {
	var out []string
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
