package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// ErrDecode is wrapped by every error from DecodeRequest and DecodeResponse.
var ErrDecode = errors.New("wire: malformed message")

type decoder struct {
	r bytes.Reader
	d *msgpack.Decoder
}

var decoders = sync.Pool{New: func() any {
	dc := &decoder{}
	dc.d = msgpack.NewDecoder(&dc.r)
	return dc
}}

var encoders = sync.Pool{New: func() any {
	e := &encoder{}
	e.e = msgpack.NewEncoder(&e.buf)
	e.e.UseCompactInts(true)
	return e
}}

type encoder struct {
	buf bytes.Buffer
	e   *msgpack.Encoder
}

func decode(payload []byte, v any, what string) error {
	if err := checkShape(payload); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrDecode, what, err)
	}
	dc := decoders.Get().(*decoder)
	dc.r.Reset(payload)
	dc.d.Reset(&dc.r)
	err := dc.d.Decode(v)
	consumed := len(payload) - dc.r.Len()
	dc.r.Reset(nil)
	decoders.Put(dc)
	if err != nil {
		return fmt.Errorf("%w: %s near byte %d of %d: %v", ErrDecode, what, consumed, len(payload), err)
	}
	if consumed != len(payload) {
		return fmt.Errorf("%w: %s: %d trailing bytes after byte %d", ErrDecode, what, len(payload)-consumed, consumed)
	}
	return nil
}

// AppendEncode appends one frame (header and msgpack payload of v) to dst.
func AppendEncode(dst []byte, v any) ([]byte, error) {
	e := encoders.Get().(*encoder)
	defer encoders.Put(e)
	e.buf.Reset()
	if err := e.e.Encode(v); err != nil {
		return dst, fmt.Errorf("wire: encode %T: %w", v, err)
	}
	out := AppendFrame(dst, e.buf.Bytes())
	if e.buf.Cap() > 1<<20 {
		e.buf = bytes.Buffer{}
		e.e.Reset(&e.buf)
	}
	return out, nil
}

// Marshal returns the msgpack payload of v without a frame header.
func Marshal(v any) ([]byte, error) { return msgpack.Marshal(v) }

// DecodeRequest decodes one request payload. It never panics on bad input.
func DecodeRequest(payload []byte) (*Request, error) {
	req := new(Request)
	if err := decode(payload, req, "request"); err != nil {
		return nil, err
	}
	if req.Op == 0 {
		return nil, fmt.Errorf("%w: request %d has no op", ErrDecode, req.ID)
	}
	return req, nil
}

// DecodeResponse decodes one response payload. It never panics on bad input.
func DecodeResponse(payload []byte) (*Response, error) {
	resp := new(Response)
	if err := decode(payload, resp, "response"); err != nil {
		return nil, err
	}
	return resp, nil
}

// UnmarshalJSON accepts what MarshalJSON writes, including an end of 2^64.
func (r *Range) UnmarshalJSON(b []byte) error {
	var raw struct {
		Start json.Number `json:"start"`
		End   json.Number `json:"end"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	s, err := strconv.ParseUint(string(raw.Start), 10, 64)
	if err != nil {
		return fmt.Errorf("range start %q: %w", raw.Start, err)
	}
	e := uint64(0)
	if string(raw.End) != "18446744073709551616" {
		if e, err = strconv.ParseUint(string(raw.End), 10, 64); err != nil {
			return fmt.Errorf("range end %q: %w", raw.End, err)
		}
	}
	r.Start, r.End = s, e
	return nil
}
