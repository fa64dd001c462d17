// Package layering holds the module's import rules — which of cleave's
// packages each package may import — and Check, which holds a package graph
// to them. docs/packages.md explains each rule; this table is its
// executable copy, and the package's test runs it over the module.
//
// Only the imports of non-test files are checked: a package's tests may
// reach further (wire's tests use internal/ring, which imports wire).
package layering

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Rules maps each package, by its path inside the module, to the module
// packages it may import. "internal/*" stands for every internal package
// except the test helpers (TestOnly), "*" for every package. A package the
// table does not name fails Check until it is added here and in
// docs/packages.md.
var Rules = map[string][]string{
	// The vocabulary: frames, messages, codes, the codec.
	"wire": {"internal/fspath"},

	// The replicated-state-machine core.
	"replica": {"wire", "internal/rpc", "internal/durable"},
	// The pure file state machine.
	"fsm": {"wire", "internal/fspath", "internal/ring", "internal/durable"},
	// The storage node server around fsm and replica.
	"cluster": {"fsm", "replica", "wire", "internal/*"},
	// The routers' control plane: meta group, routing table, split driver.
	"control": {"replica", "wire", "internal/*"},
	// Forwarding, retries, gossip view, status.
	"router": {"control", "replica", "wire", "internal/*"},
	// The Go SDK.
	"client": {"wire", "internal/*"},
	// The local supervisor behind `cleave up`: talks to its children over
	// the protocol, never links their code.
	"up": {"client", "wire", "internal/*"},
	// The load generator.
	"loadgen": {"client", "wire", "internal/*"},

	// The Kubernetes operator, and its API types with what is generated
	// from them (make codegen): each generated package imports only the
	// API and the generated packages beneath it.
	"operator":                          {"client", "wire", "internal/*", opAPI, opClientset, opScheme, opInformers, opStoreInformers, opListers},
	opAPI:                               {},
	opClientset:                         {opTyped},
	opClientset + "/fake":               {opAPI, opClientset, opTyped, opTyped + "/fake"},
	opScheme:                            {opAPI},
	opTyped:                             {opAPI, opScheme},
	opTyped + "/fake":                   {opAPI, opTyped},
	opInformers:                         {opAPI, opClientset, opInformers + "/cleave", opInformers + "/internalinterfaces"},
	opInformers + "/cleave":             {opStoreInformers, opInformers + "/internalinterfaces"},
	opStoreInformers:                    {opAPI, opClientset, opInformers + "/internalinterfaces", opListers},
	opInformers + "/internalinterfaces": {opClientset},
	opListers:                           {opAPI},

	// Small shared pieces.
	"internal/atomicfile": {},
	"internal/bytesize":   {},
	"internal/certs":      {},
	"internal/durable":    {},
	"internal/fspath":     {},
	"internal/gossip":     {},
	"internal/ops":        {"wire"},
	"internal/ports":      {},
	"internal/ring":       {"wire", "internal/fspath"},
	"internal/rpc":        {"wire"},
	"internal/token":      {},
	"internal/layering":   {},

	// Test helpers (TestOnly).
	"internal/eventually":  {},
	"internal/syncbuf":     {},
	"internal/testvol":     {},
	"internal/fsmodel":     {"wire", "internal/fspath"},
	"internal/testcluster": {"client", "cluster", "fsm", "router", "control", "replica", "wire", "internal/*"},
	"tests":                {"*"},
	"tests/k8s/kubeenv":    {"internal/*"},
	"tests/k8s":            {"*"},

	// Binaries: thin mains on top of everything else.
	"cmd/cleave":         {"client", "cluster", "fsm", "router", "control", "replica", "up", "operator", "wire", "internal/*"},
	"cmd/cleave-loadgen": {"client", "loadgen", "wire", "internal/*"},
	// The scale-out benchmark's driver (make bench-scale).
	"bench/scale": {"loadgen", "up", "internal/*"},
}

// The operator's API package and the generated packages the rules name.
const (
	opAPI            = "operator/apis/cleave/v1alpha1"
	opClientset      = "operator/generated/clientset/versioned"
	opScheme         = opClientset + "/scheme"
	opTyped          = opClientset + "/typed/cleave/v1alpha1"
	opInformers      = "operator/generated/informers/externalversions"
	opStoreInformers = opInformers + "/cleave/v1alpha1"
	opListers        = "operator/generated/listers/cleave/v1alpha1"
)

// TestOnly lists the packages only tests may use: no other package imports
// them, though they may import each other.
var TestOnly = []string{"internal/eventually", "internal/syncbuf", "internal/testvol", "internal/fsmodel", "internal/testcluster", "tests", "tests/k8s/kubeenv", "tests/k8s"}

// Check holds graph — each package's path inside module mapped to the full
// import paths of its non-test imports — to Rules. It returns one line per
// broken rule, naming the importer and the import, sorted; nil if none.
// Imports from outside module are ignored.
func Check(module string, graph map[string][]string) []string {
	var bad []string
	for pkg, imports := range graph {
		allowed, known := Rules[pkg]
		if !known {
			bad = append(bad, fmt.Sprintf("%s: no layering rule; add it to internal/layering.Rules and docs/packages.md", pkg))
			continue
		}
		for _, imp := range imports {
			dep, ok := strings.CutPrefix(imp, module+"/")
			if !ok {
				continue
			}
			if why := forbidden(pkg, dep, allowed); why != "" {
				bad = append(bad, fmt.Sprintf("%s imports %s: %s", pkg, dep, why))
			}
		}
	}
	sort.Strings(bad)
	return bad
}

// forbidden says why pkg may not import dep, or "" if it may.
func forbidden(pkg, dep string, allowed []string) string {
	switch {
	case dep == "cmd" || strings.HasPrefix(dep, "cmd/"):
		return "nothing imports a command"
	case dep == "tests" || strings.HasPrefix(dep, "tests/"):
		return "nothing imports the integration tests"
	case slices.Contains(TestOnly, dep) && !slices.Contains(TestOnly, pkg):
		return "a test helper; only tests and other test helpers import it"
	}
	for _, a := range allowed {
		if a == "*" || a == dep || a == "internal/*" && strings.HasPrefix(dep, "internal/") {
			return ""
		}
	}
	return fmt.Sprintf("not in its allowed imports %v", allowed)
}
