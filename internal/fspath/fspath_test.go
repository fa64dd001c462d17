package fspath

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	long := strings.Repeat("a", MaxComponent+1)
	tests := []struct {
		path string
		rule string // substring of the error, "" if valid
	}{
		{"/", ""},
		{"/a", ""},
		{"/photos/2024/a.jpg", ""},
		{"/ünïcode/日本", ""},
		{"/" + strings.Repeat("a", MaxComponent), ""},
		{"", "empty path"},
		{"a/b", "not absolute"},
		{"/a//b", "empty component"},
		{"/a/", "ends with /"},
		{"/a/./b", `"." component`},
		{"/a/../b", `".." component`},
		{"/..", `".." component`},
		{"/a\x00b", "NUL"},
		{"/\xff", "UTF-8"},
		{"/" + long, "component longer than 255"},
		{"/" + strings.Repeat("a/", MaxPath/2), "longer than 4096"},
		{"/a\x1b[2J", "control character U+001B at byte 2"},
		{"/a/b\nc", "control character U+000A at byte 4"},
		{"/\t", "control character U+0009 at byte 1"},
		{"/x\x7f", "control character U+007F at byte 2"},
		{"/é\u009b31m", "control character U+009B at byte 3"},
		{"/\u00a0nbsp", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			err := Validate(tt.path)
			if tt.rule == "" {
				if err != nil {
					t.Fatalf("Validate(%q) = %v, want nil", tt.path, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.rule) {
				t.Fatalf("Validate(%q) = %v, want error containing %q", tt.path, err, tt.rule)
			}
		})
	}
}

// Paths stored before control characters were refused still pass
// ValidateStored; every other rule holds for both.
func TestValidateStored(t *testing.T) {
	for _, p := range []string{"/a\x1b[2J", "/a/b\nc", "/x\x7f"} {
		if err := ValidateStored(p); err != nil {
			t.Errorf("ValidateStored(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"", "a", "/a\x00", "/a/", "/..", "/\xff"} {
		if ValidateStored(p) == nil {
			t.Errorf("ValidateStored(%q) = nil", p)
		}
	}
	err := Validate("/a\x1b[2J")
	if err == nil || strings.ContainsRune(err.Error(), 0x1b) {
		t.Fatalf("Validate error %q must name the character escaped", err)
	}
}

func TestRootSplitJoin(t *testing.T) {
	tests := []struct{ path, root, parent, name string }{
		{"/a", "a", "/", "a"},
		{"/a/b", "a", "/a", "b"},
		{"/photos/2024/a.jpg", "photos", "/photos/2024", "a.jpg"},
	}
	for _, tt := range tests {
		if got := Root(tt.path); got != tt.root {
			t.Errorf("Root(%q) = %q, want %q", tt.path, got, tt.root)
		}
		parent, name := Split(tt.path)
		if parent != tt.parent || name != tt.name {
			t.Errorf("Split(%q) = %q, %q, want %q, %q", tt.path, parent, name, tt.parent, tt.name)
		}
		if got := Join(parent, name); got != tt.path {
			t.Errorf("Join(%q, %q) = %q", parent, name, got)
		}
	}
	if Root("/") != "" {
		t.Error(`Root("/") should be ""`)
	}
	if !IsWithin("/a/b", "/a") || IsWithin("/ab", "/a") || !IsWithin("/a", "/a") || !IsWithin("/x", "/") {
		t.Error("IsWithin wrong")
	}
}

func FuzzValidate(f *testing.F) {
	for _, s := range []string{"/", "/a/b", "//", "/a/../b", "/\x00", "a", "/\xff\xfe", "/a\x1b[2J", "/\u009b", "/a\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		err := Validate(p)
		if err == nil && ValidateStored(p) != nil {
			t.Fatalf("%q passes Validate but not ValidateStored", p)
		}
		if err != nil && strings.ContainsFunc(err.Error(), IsControl) {
			t.Fatalf("error for %q prints a control character raw: %q", p, err)
		}
		if err != nil || p == "/" {
			return
		}
		if strings.ContainsFunc(p, IsControl) {
			t.Fatalf("valid %q has a control character", p)
		}
		// A valid path splits into a valid parent and a name that rejoin to it.
		parent, name := Split(p)
		if Validate(parent) != nil || name == "" || Join(parent, name) != p {
			t.Fatalf("valid %q split into %q, %q", p, parent, name)
		}
		if r := Root(p); r == "" || strings.Contains(r, "/") {
			t.Fatalf("valid %q has root %q", p, r)
		}
	})
}
