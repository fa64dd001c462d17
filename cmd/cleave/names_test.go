package main

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/internal/fspath"
)

// hostile are names stored before control characters were refused: a
// newline that forges a second row, an ESC sequence that clears the
// screen, a C1 CSI, a DEL, and bytes that are not UTF-8.
var hostile = []struct{ name, want string }{
	{"a\nfile\t0\t0\tforged", `"a\nfile\t0\t0\tforged"`},
	{"x\x1b[2J", `"x\x1b[2J"`},
	{"c1\u009b31m", `"c1\u009b31m"`},
	{"del\x7f", `"del\x7f"`},
	{"bad\xff", `"bad\xff"`},
	{"plain ünïcode", "plain ünïcode"},
}

// noControl fails t if out has a control character other than the line
// ends the table writers put.
func noControl(t *testing.T, what, out string) {
	t.Helper()
	if i := strings.IndexFunc(out, func(r rune) bool { return r != '\n' && fspath.IsControl(r) }); i >= 0 {
		t.Errorf("%s prints a control character raw at byte %d: %q", what, i, out)
	}
}

// The table output of every command that prints a stored name escapes
// control characters, quoting the name as strconv.Quote does.
func TestNamesEscapedOnOutput(t *testing.T) {
	var stats []client.Stat
	var ents []client.Entry
	var st client.Status
	st.Clusters = []client.ClusterStatus{{ID: "c1", Leader: "n1", Nodes: []client.NodeStatus{{Addr: "n1"}}}}
	for _, h := range hostile {
		stats = append(stats, client.Stat{Name: h.name, Type: client.TypeFile, Mtime: time.Unix(0, 0)})
		ents = append(ents, client.Entry{Path: "/r/" + h.name, Stat: client.Stat{Name: h.name, Type: client.TypeFile}})
		st.Clusters[0].Nodes[0].Roots = append(st.Clusters[0].Nodes[0].Roots, client.RootUsage{Name: h.name})
	}
	var ls, lsr, roots bytes.Buffer
	if err := writeLsTable(&ls, stats); err != nil {
		t.Fatal(err)
	}
	if err := writeLsRTable(&lsr, ents); err != nil {
		t.Fatal(err)
	}
	if err := writeRootsTable(&roots, &st); err != nil {
		t.Fatal(err)
	}
	for what, out := range map[string]string{"ls": ls.String(), "ls -R": lsr.String(), "status roots": roots.String()} {
		noControl(t, what, out)
		if n := strings.Count(strings.TrimPrefix(out, "\n"), "\n"); n != len(hostile)+1 {
			t.Errorf("%s: %d lines for %d names: %q", what, n, len(hostile), out)
		}
		for _, h := range hostile {
			want := h.want
			if what == "ls -R" && want != h.name {
				want = strconv.Quote("/r/" + h.name)
			}
			if !strings.Contains(out, want) {
				t.Errorf("%s: no %s in %q", what, want, out)
			}
		}
	}
	for _, h := range hostile {
		var b bytes.Buffer
		if err := writeStatTable(&b, &client.Stat{Name: h.name}); err != nil {
			t.Fatal(err)
		}
		noControl(t, "stat", b.String())
		if !strings.Contains(b.String(), h.want) {
			t.Errorf("stat: no %s in %q", h.want, b.String())
		}
	}
}

// An error naming a stored path (the server's message) is printed with
// its control characters escaped.
func TestErrorLineEscapesControlCharacters(t *testing.T) {
	for _, err := range []error{
		&client.Error{Code: client.CodeNotFound, Message: "no such file: /r/x\x1b[2J\nforged"},
		errors.New("open /r/x\x1b[2J: broken"),
	} {
		m := message(err)
		noControl(t, "error line", m+"\n")
		if !strings.Contains(m, `\x1b[2J`) {
			t.Errorf("message(%q) = %q, want the ESC escaped", err, m)
		}
	}
}

// A new name with a control character is refused as INVALID, naming the
// character and its byte offset; the error line itself stays printable.
func TestControlCharacterNameRefused(t *testing.T) {
	clearEnv(t)
	addr := useDeployment(t)
	code, _, stderr := cli(t, "", "--router", addr, "mkdir", "/r\x1b[2J")
	if code != 1 || !strings.HasPrefix(stderr, "cleave: INVALID: ") || !strings.Contains(stderr, "control character U+001B at byte 2") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	noControl(t, "stderr", stderr)
}
