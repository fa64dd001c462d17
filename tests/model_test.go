package tests

import (
	"fmt"
	"sort"
	"strings"

	"github.com/anishathalye/porcupine"
)

// The porcupine model of one root directory: the files directly in it and
// their contents. Histories are partitioned by root, since every root is
// served by one Raft group and linearizability composes.

// fsOp is the input of one recorded operation.
type fsOp struct {
	Kind  string // "put", "append", "get", "rm", "ls"
	Root  string
	Name  string // file name inside the root; "" for ls
	Value string // put, append
}

// fsResult is the output of one recorded operation.
type fsResult struct {
	Unknown  bool     // timed out or failed ambiguously: may or may not have happened
	NotFound bool     // get/rm of a missing file
	Value    string   // get
	Names    []string // ls, sorted
}

// rootState is a root's files, encoded canonically ("a=1\x00b=2") so states
// compare with == and hash cheaply.
type rootState string

func decodeState(s rootState) map[string]string {
	m := map[string]string{}
	if s == "" {
		return m
	}
	for _, kv := range strings.Split(string(s), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func encodeState(m map[string]string) rootState {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(0)
		}
		b.WriteString(k + "=" + m[k])
	}
	return rootState(b.String())
}

// fsModel is nondeterministic only in the unknown outcomes: an unknown
// mutation leads to both the state where it happened and the one where it
// did not; an unknown read changes nothing.
var fsModel = porcupine.NondeterministicModel{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byRoot := map[string][]porcupine.Operation{}
		var roots []string
		for _, op := range history {
			r := op.Input.(fsOp).Root
			if _, ok := byRoot[r]; !ok {
				roots = append(roots, r)
			}
			byRoot[r] = append(byRoot[r], op)
		}
		sort.Strings(roots)
		out := make([][]porcupine.Operation, 0, len(roots))
		for _, r := range roots {
			out = append(out, byRoot[r])
		}
		return out
	},
	Init: func() []interface{} { return []interface{}{rootState("")} },
	Step: func(state, input, output interface{}) []interface{} {
		st := state.(rootState)
		in, out := input.(fsOp), output.(fsResult)
		files := decodeState(st)
		switch in.Kind {
		case "put":
			files[in.Name] = in.Value
			next := encodeState(files)
			if out.Unknown {
				return []interface{}{st, next}
			}
			return []interface{}{next}
		case "append": // creates the file if absent
			files[in.Name] += in.Value
			next := encodeState(files)
			if out.Unknown {
				return []interface{}{st, next}
			}
			return []interface{}{next}
		case "rm":
			_, had := files[in.Name]
			delete(files, in.Name)
			next := encodeState(files)
			switch {
			case out.Unknown:
				return []interface{}{st, next}
			case out.NotFound && !had, !out.NotFound && had:
				return []interface{}{next}
			}
			return nil
		case "get":
			v, had := files[in.Name]
			switch {
			case out.Unknown:
				return []interface{}{st}
			case out.NotFound && !had, !out.NotFound && had && out.Value == v:
				return []interface{}{st}
			}
			return nil
		case "ls":
			if out.Unknown {
				return []interface{}{st}
			}
			names := make([]string, 0, len(files))
			for k := range files {
				names = append(names, k)
			}
			sort.Strings(names)
			if strings.Join(names, "/") == strings.Join(out.Names, "/") {
				return []interface{}{st}
			}
			return nil
		}
		return nil
	},
	Equal: func(a, b interface{}) bool { return a.(rootState) == b.(rootState) },
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(fsOp), output.(fsResult)
		var res string
		switch {
		case out.Unknown:
			res = "unknown"
		case out.NotFound:
			res = "not found"
		case in.Kind == "get":
			res = out.Value
		case in.Kind == "ls":
			res = "[" + strings.Join(out.Names, " ") + "]"
		default:
			res = "ok"
		}
		switch in.Kind {
		case "put", "append":
			return fmt.Sprintf("%s(%s, %s) → %s", in.Kind, in.Name, in.Value, res)
		case "ls":
			return fmt.Sprintf("ls(/%s) → %s", in.Root, res)
		}
		return fmt.Sprintf("%s(%s) → %s", in.Kind, in.Name, res)
	},
	DescribeState: func(state interface{}) string {
		return "{" + strings.ReplaceAll(string(state.(rootState)), "\x00", ", ") + "}"
	},
}
