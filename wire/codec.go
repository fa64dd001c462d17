package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
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

// decodeReflect checks payload's shape and decodes it into v by reflection:
// the reference the fast decoder matches, and its fallback.
func decodeReflect(payload []byte, v any, what string) error {
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

// AppendEncode appends one frame, the length prefix and the msgpack payload
// of v, to dst and returns the extended buffer; on error dst is returned
// unchanged. A *Request or *Response is encoded without reflection and,
// when dst has room, without allocating, so a connection can append many
// frames to one reused buffer and write them with one call. Other values
// are encoded by reflection into the same buffer.
func AppendEncode(dst []byte, v any) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	var err error
	switch m := v.(type) {
	case *Request:
		if m == nil {
			dst = append(dst, 0xc0)
		} else {
			dst, err = appendRequest(dst, m)
		}
	case *Response:
		if m == nil {
			dst = append(dst, 0xc0)
		} else {
			dst, err = appendResponse(dst, m)
		}
	default:
		dst, err = appendReflect(dst, v)
	}
	if err != nil {
		return dst[:start], fmt.Errorf("wire: encode %T: %w", v, err)
	}
	n := len(dst) - start - HeaderSize
	if uint64(n) > math.MaxUint32 {
		return dst[:start], fmt.Errorf("wire: encode %T: payload of %d bytes does not fit a frame", v, n)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(n))
	return dst, nil
}

// Marshal returns the msgpack payload of v without a frame header.
func Marshal(v any) ([]byte, error) { return msgpack.Marshal(v) }

// DecodeRequest decodes one request payload. It never panics on bad input.
// The request does not alias payload.
func DecodeRequest(payload []byte) (*Request, error) { return decodeRequest(payload, false) }

// DecodeRequestSharing is DecodeRequest, except that the Data of a one-way
// request (Op.OneWay: a raft message) may alias payload, and so is valid
// only until payload is reused: a server handles a one-way frame before it
// reads the next, and the raft message is unmarshalled (copied) at once,
// so copying its data first was one more copy of every replicated entry.
func DecodeRequestSharing(payload []byte) (*Request, error) { return decodeRequest(payload, true) }

func decodeRequest(payload []byte, share bool) (*Request, error) {
	req := new(Request)
	if decodeRequestFast(payload, req, share) != nil {
		*req = Request{}
		if err := decodeReflect(payload, req, "request"); err != nil {
			return nil, err
		}
	} else if share && req.Data != nil && !req.Op.OneWay() {
		req.Data = bytes.Clone(req.Data)
	}
	if req.Op == 0 {
		return nil, fmt.Errorf("%w: request %d has no op", ErrDecode, req.ID)
	}
	return req, nil
}

// DecodeResponse decodes one response payload. It never panics on bad
// input. The response does not alias payload.
func DecodeResponse(payload []byte) (*Response, error) {
	resp := new(Response)
	if decodeResponseFast(payload, resp) != nil {
		*resp = Response{}
		if err := decodeReflect(payload, resp, "response"); err != nil {
			return nil, err
		}
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
