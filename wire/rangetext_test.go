package wire_test

import (
	"strings"
	"testing"

	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		in      string
		want    wire.Range
		wantErr string
	}{
		{in: "0-9223372036854775808", want: wire.Range{Start: 0, End: 1 << 63}},
		{in: "9223372036854775808-18446744073709551616", want: wire.Range{Start: 1 << 63, End: 0}},
		{in: "0-18446744073709551616", want: wire.Range{}},
		{in: "5-6", want: wire.Range{Start: 5, End: 6}},
		{in: "5", wantErr: `range "5": want START-END`},
		{in: "x-6", wantErr: `start "x" must be a number`},
		{in: "-1-6", wantErr: `start "" must be a number`},
		{in: "18446744073709551616-18446744073709551616", wantErr: `start "18446744073709551616"`},
		{in: "1-18446744073709551617", wantErr: `end "18446744073709551617" must be a number up to 2^64`},
		{in: "6-6", wantErr: "end must be greater than start"},
		{in: "7-6", wantErr: "end must be greater than start"},
		{in: "5-0", wantErr: "write 18446744073709551616 for the top of the ring"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := wire.ParseRange(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseRange(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseRange(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			if back := wire.FormatRange(got); back != tt.in {
				t.Fatalf("FormatRange(%v) = %q, want %q", got, back, tt.in)
			}
		})
	}
	for n := 1; n <= 5; n++ {
		for _, r := range ring.Even(n) {
			got, err := wire.ParseRange(wire.FormatRange(r))
			if err != nil || got != r {
				t.Fatalf("round trip of %v: %v, %v", r, got, err)
			}
		}
	}
}
