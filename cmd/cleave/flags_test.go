package main

import (
	"maps"
	"strings"
	"testing"

	"github.com/cleavefs/cleave/up"
	"github.com/cleavefs/cleave/wire"
)

func TestParsePeers(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[uint64]string
		wantErr string
	}{
		{name: "three", in: "1=127.0.0.1:7501,2=127.0.0.1:7502,3=127.0.0.1:7503",
			want: map[uint64]string{1: "127.0.0.1:7501", 2: "127.0.0.1:7502", 3: "127.0.0.1:7503"}},
		{name: "empty host", in: "1=:7501", want: map[uint64]string{1: ":7501"}},
		{name: "spaces", in: " 1=:7501 , 2=:7502", want: map[uint64]string{1: ":7501", 2: ":7502"}},
		{name: "empty", in: "", wantErr: "no peers"},
		{name: "bad id", in: "1=:7501,x=:7502", wantErr: `peer "x": id must be a number`},
		{name: "zero id", in: "0=:7501", wantErr: `peer "0": id must be nonzero`},
		{name: "no equals", in: "1=:7501,2:7502", wantErr: `peer "2:7502": want ID=HOST:PORT`},
		{name: "no port", in: "1=localhost", wantErr: `peer "1": address "localhost": want HOST:PORT`},
		{name: "bad port", in: "1=localhost:http", wantErr: `peer "1": address "localhost:http": port must be a number`},
		{name: "port zero", in: "1=localhost:0", wantErr: `port must be a number from 1 to 65535`},
		{name: "dup id", in: "1=:7501,1=:7502", wantErr: `peer "1": listed twice`},
		{name: "dup addr", in: "1=:7501,2=:7501", wantErr: `peer "2": address :7501 already belongs to peer 1`},
		{name: "trailing comma", in: "1=:7501,", wantErr: `peer "": want ID=HOST:PORT`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePeers(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parsePeers(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || !maps.Equal(got, tt.want) {
				t.Fatalf("parsePeers(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			again, err := parsePeers(up.FormatPeers(got))
			if err != nil || !maps.Equal(again, got) {
				t.Fatalf("round trip of %v via %q: %v, %v", got, up.FormatPeers(got), again, err)
			}
		})
	}
	if got := up.FormatPeers(map[uint64]string{3: "a:3", 1: "a:1", 2: "a:2"}); got != "1=a:1,2=a:2,3=a:3" {
		t.Fatalf("up.FormatPeers not sorted by id: %q", got)
	}
}

func TestParseClusters(t *testing.T) {
	c1 := "c1=1@127.0.0.1:7501,2@127.0.0.1:7502,3@127.0.0.1:7503"
	c2 := "c2=4@127.0.0.1:7504,5@127.0.0.1:7505,6@127.0.0.1:7506"
	tests := []struct {
		name    string
		in      []string
		wantErr string
	}{
		{name: "two", in: []string{c1, c2}},
		{name: "one node", in: []string{"c1=1@:7501"}},
		{name: "none", in: nil, wantErr: "no clusters"},
		{name: "no equals", in: []string{"c1"}, wantErr: `cluster "c1": want ID=NODE@HOST:PORT`},
		{name: "no id", in: []string{"=1@:7501"}, wantErr: `want ID=NODE@HOST:PORT`},
		{name: "no members", in: []string{"c1="}, wantErr: `cluster "c1": no members`},
		{name: "no at", in: []string{"c1=1@:7501,2=:7502"}, wantErr: `cluster "c1": member "2=:7502": want ID@HOST:PORT`},
		{name: "bad id", in: []string{"c1=1@:7501,x@:7502"}, wantErr: `cluster "c1": member "x@:7502": id must be a number`},
		{name: "bad addr", in: []string{"c1=1@nowhere"}, wantErr: `cluster "c1": member "1@nowhere": address "nowhere": want HOST:PORT`},
		{name: "dup member", in: []string{"c1=1@:7501,1@:7502"}, wantErr: `cluster "c1": member 1 listed twice`},
		{name: "dup addr", in: []string{"c1=1@:7501,2@:7501"}, wantErr: `cluster "c1": address :7501 listed twice`},
		{name: "dup cluster", in: []string{c1, "c1=4@:7504"}, wantErr: `cluster "c1": given twice`},
		{name: "node in two", in: []string{c1, "c2=3@:7509"}, wantErr: `cluster "c2": node 3 is already a member of cluster "c1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseClusters(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseClusters(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || len(got) != len(tt.in) {
				t.Fatalf("parseClusters(%q) = %v, %v", tt.in, got, err)
			}
			for i, ci := range got {
				if back := up.FormatCluster(ci); back != tt.in[i] {
					t.Fatalf("up.FormatCluster = %q, want %q", back, tt.in[i])
				}
			}
		})
	}
	got, _ := parseClusters([]string{c1, c2})
	if got[1].ID != "c2" || got[1].Members[2] != (wire.Member{ID: 6, Addr: "127.0.0.1:7506"}) {
		t.Fatalf("parsed %+v", got)
	}
}
