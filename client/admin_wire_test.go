package client

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/cleavefs/cleave/wire"
)

// The admin answers keep every field of the protocol's messages and print
// the same JSON, so `cleave status -o json` and the status page agree and
// a field added to wire but not here fails this test.
func TestAdminTypesCopyEveryField(t *testing.T) {
	var (
		ws wire.Status
		wt wire.TableInfo
		wn wire.NodeStatus
		wu []wire.UserInfo
	)
	for _, p := range []any{&ws, &wt, &wn, &wu} {
		fill(reflect.ValueOf(p).Elem(), 1)
	}
	for _, tc := range []struct {
		name      string
		wire, sdk any
	}{
		{"Status", &ws, statusFromWire(&ws)},
		{"RoutingTable", &wt, tableFromWire(&wt)},
		{"NodeStatus", &wn, nodeFromWire(&wn)},
		{"SplitStatus", &ws.Splits[0], splitFromWire(&ws.Splits[0])},
		{"Users", wu, usersFromWire(wu)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sameFields(t, tc.name, reflect.ValueOf(tc.wire), reflect.ValueOf(tc.sdk))
			wj, err := json.Marshal(tc.wire)
			if err != nil {
				t.Fatal(err)
			}
			sj, err := json.Marshal(tc.sdk)
			if err != nil {
				t.Fatal(err)
			}
			if string(wj) != string(sj) {
				t.Errorf("JSON differs:\nwire: %s\nsdk:  %s", wj, sj)
			}
			back := reflect.New(reflect.TypeOf(tc.sdk)).Interface()
			if err := json.Unmarshal(sj, back); err != nil {
				t.Fatalf("read back the JSON: %v", err)
			}
			if bj, _ := json.Marshal(back); string(bj) != string(sj) {
				t.Errorf("JSON read back differs:\nwrote: %s\nread:  %s", sj, bj)
			}
		})
	}
}

// SplitSpec reaches the wire with every field the SDK sets.
func TestSplitSpecToWire(t *testing.T) {
	var s SplitSpec
	fill(reflect.ValueOf(&s).Elem(), 1)
	sameFields(t, "SplitSpec", reflect.ValueOf(&s), reflect.ValueOf(s.toWire()))
}

// fill sets every field reachable from v to a nonzero value derived from
// seed, with two elements in each slice.
func fill(v reflect.Value, seed int) int {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				seed = fill(v.Field(i), seed+1)
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			seed = fill(v.Index(i), seed+1)
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		seed = fill(v.Elem(), seed)
	case reflect.String:
		v.SetString("s" + string(rune('a'+seed%26)))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(int64(seed))
	case reflect.Uint, reflect.Uint64, reflect.Uint32, reflect.Uint8:
		v.SetUint(uint64(seed))
	}
	return seed
}

// sameFields fails unless every exported field of a (named as in a) has
// the same value in b, recursively; only field names are matched, so the
// two sides may use different named types.
func sameFields(t *testing.T, at string, a, b reflect.Value) {
	t.Helper()
	for a.Kind() == reflect.Pointer {
		a = a.Elem()
	}
	for b.Kind() == reflect.Pointer {
		b = b.Elem()
	}
	switch a.Kind() {
	case reflect.Struct:
		for i := range a.NumField() {
			f := a.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			bf := b.FieldByName(f.Name)
			if !bf.IsValid() {
				t.Errorf("%s.%s: no such field in %v", at, f.Name, b.Type())
				continue
			}
			sameFields(t, at+"."+f.Name, a.Field(i), bf)
		}
	case reflect.Slice:
		if a.Len() != b.Len() || a.IsNil() != b.IsNil() {
			t.Errorf("%s: %d elements (nil %v), copied as %d (nil %v)", at, a.Len(), a.IsNil(), b.Len(), b.IsNil())
			return
		}
		for i := range a.Len() {
			sameFields(t, at, a.Index(i), b.Index(i))
		}
	default:
		if a.Kind() != b.Kind() || !equalScalar(a, b) {
			t.Errorf("%s: %v, copied as %v", at, a, b)
		}
	}
}

func equalScalar(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.String:
		return a.String() == b.String()
	case reflect.Bool:
		return a.Bool() == b.Bool()
	case reflect.Int, reflect.Int64, reflect.Int32:
		return a.Int() == b.Int()
	case reflect.Uint, reflect.Uint64, reflect.Uint32, reflect.Uint8:
		return a.Uint() == b.Uint()
	}
	return true
}

// The SDK's codes and file types have the protocol's values.
func TestCodesAreTheProtocols(t *testing.T) {
	pairs := []struct {
		c Code
		w wire.Code
	}{
		{CodeOK, wire.OK}, {CodeNotFound, wire.NotFound}, {CodeExists, wire.Exists},
		{CodeNotDir, wire.NotDir}, {CodeIsDir, wire.IsDir}, {CodeNotEmpty, wire.NotEmpty},
		{CodeCrossRoot, wire.CrossRoot}, {CodeConflict, wire.Conflict}, {CodeInvalid, wire.Invalid},
		{CodeTooLarge, wire.TooLarge}, {CodeUnauthorized, wire.Unauthorized}, {CodeForbidden, wire.Forbidden},
		{CodeNotLeader, wire.NotLeader}, {CodeWrongRange, wire.WrongRange}, {CodeUnavailable, wire.Unavailable},
		{CodeTimeout, wire.Timeout}, {CodeInternal, wire.Internal}, {CodeNoSpace, wire.NoSpace},
	}
	if len(pairs) != len(wire.Codes()) {
		t.Fatalf("%d codes here, the protocol has %d", len(pairs), len(wire.Codes()))
	}
	for _, p := range pairs {
		if uint8(p.c) != uint8(p.w) {
			t.Errorf("%v is %d here, %d in the protocol", p.w, p.c, p.w)
		}
	}
	if uint8(TypeFile) != uint8(wire.TypeFile) || uint8(TypeDir) != uint8(wire.TypeDir) {
		t.Errorf("file types %d/%d, protocol's %d/%d", TypeFile, TypeDir, wire.TypeFile, wire.TypeDir)
	}
}
