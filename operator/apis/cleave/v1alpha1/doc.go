// Package v1alpha1 is version v1alpha1 of the cleave.io API group: the
// CleaveStore resource, one cleave deployment (routers and clusters of
// storage nodes) that the operator runs in a namespace.
//
// The types here are the contract with kubectl and the CRD in
// manifests/crd: the kubebuilder markers generate the CRD's schema
// (hack/update-codegen.sh), the genclient markers the typed clientset,
// listers and informers under operator/generated. Change a field, then run
// `make codegen`; `make verify-codegen` fails while anything generated is
// stale.
//
// +k8s:deepcopy-gen=package
// +groupName=cleave.io
package v1alpha1
