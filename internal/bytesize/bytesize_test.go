package bytesize

import (
	"math"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string // a part of the error; "" for success
	}{
		{in: "0", want: 0},
		{in: "512", want: 512},
		{in: "10B", want: 10},
		{in: "10 b", want: 10},
		{in: "1KB", want: 1000},
		{in: "1kb", want: 1000},
		{in: "1MB", want: 1e6},
		{in: "100", want: 100},
		// 64 MiB under the supervisor's former parser, which read every unit
		// as a power of 1024; MB is a power of 1000 everywhere now.
		{in: "64mb", want: 64e6},
		{in: "1GB", want: 1e9},
		{in: "2TB", want: 2e12},
		{in: "1KiB", want: 1 << 10},
		{in: "1kib", want: 1 << 10},
		{in: "64MiB", want: 64 << 20},
		{in: "224MiB", want: 224 << 20},
		{in: "1GiB", want: 1 << 30},
		{in: "3TiB", want: 3 << 40},
		{in: "1K", want: 1 << 10},
		{in: "64M", want: 64 << 20},
		{in: "1G", want: 1 << 30},
		{in: "1T", want: 1 << 40},
		{in: "7 KiB", want: 7 << 10},
		{in: " 1KiB ", want: 1 << 10},
		{in: "1.5KiB", want: 1536},
		{in: "1.5KB", want: 1500},
		{in: "0.5", wantErr: "not a whole number of bytes"},
		{in: ".5K", want: 512},
		{in: "9223372036854775807", want: math.MaxInt64},
		{in: "9223372036854775808", wantErr: "above the largest"},
		{in: "99999999999TiB", wantErr: "above the largest"},
		{in: "", wantErr: `"" is not a size: empty`},
		{in: "MiB", wantErr: `"MiB" is not a size: no number`},
		{in: "-1", wantErr: `"-1" is not a size: no number`},
		{in: "1e3", wantErr: `unknown unit "e3"`},
		{in: "5 furlongs", wantErr: `"5 furlongs" is not a size: unknown unit "furlongs"; want a number of bytes`},
		{in: "1XB", wantErr: `unknown unit "XB"`},
		{in: "1.2.3K", wantErr: `"1.2.3" is not a number`},
		{in: ".", wantErr: `"." is not a number`},
		{in: "NaN", wantErr: "no number"},
		{in: "1 KiB 2", wantErr: `unknown unit "KiB 2"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) = %d, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Parse(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

// TestErrorsListTheForms checks that a refused size tells the user what is
// accepted.
func TestErrorsListTheForms(t *testing.T) {
	for _, in := range []string{"", "x", "1XB", "1.2.3"} {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), "KiB") || !strings.Contains(err.Error(), "KB") {
			t.Errorf("Parse(%q) error %v does not list the accepted units", in, err)
		}
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0B"}, {1, "1B"}, {1000, "1000B"}, {1500, "1500B"}, {1024, "1KiB"}, {1536, "1536B"},
		{64 << 20, "64MiB"}, {1 << 30, "1GiB"}, {3 << 40, "3TiB"}, {(1 << 40) + (1 << 30), "1025GiB"},
	}
	for _, tt := range tests {
		if got := Format(tt.in); got != tt.want {
			t.Errorf("Format(%d) = %q, want %q", tt.in, got, tt.want)
		}
		if back, err := Parse(tt.want); err != nil || back != tt.in {
			t.Errorf("Parse(Format(%d) = %q) = %d, %v", tt.in, tt.want, back, err)
		}
	}
}

// FuzzParse checks that Parse never panics, never returns a negative size,
// and that what it accepts survives a Format round trip.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0", "64MiB", "1GB", "1.5KiB", " 7 kib ", "99999999999TiB", "1e3", "-1", ".", "1..2K", "0.001KB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err != nil {
			if !strings.Contains(err.Error(), "is not a size") {
				t.Fatalf("Parse(%q) error %q does not name the input", s, err)
			}
			return
		}
		if n < 0 {
			t.Fatalf("Parse(%q) = %d, negative", s, n)
		}
		if back, err := Parse(Format(n)); err != nil || back != n {
			t.Fatalf("Parse(Format(%d) = %q) = %d, %v", n, Format(n), back, err)
		}
	})
}
