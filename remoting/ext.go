package remoting

import (
	"errors"
	"fmt"
	"strconv"
)

// ErrBadHeader is returned (wrapped) by the typed ext-field accessors when a field is missing or does
// not parse. Its text names the field, so it can be sent back as a remark.
var ErrBadHeader = errors.New("remoting: bad request header")

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// ExtReader reads typed ext fields and remembers the first failure, so a handler can read all fields
// and check once:
//
//	r := remoting.ReadExt(req)
//	topic := r.String("topic")
//	queueID := r.Int32("queueId")
//	if err := r.Err(); err != nil { ... }
type ExtReader struct {
	ext  Fields
	next int // where the pair after the last one found is: handlers read in about wire order
	err  error
}

// ReadExt returns an ExtReader over the command's ext fields.
func ReadExt(c *Command) *ExtReader { return &ExtReader{ext: c.ExtFields} }

// Err returns the first failure, wrapping ErrBadHeader, or nil.
func (r *ExtReader) Err() error { return r.err }

func (r *ExtReader) fail(key, why string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: field %q %s", ErrBadHeader, key, why)
	}
}

func (r *ExtReader) required(key string) (string, bool) {
	v, ok := r.get(key)
	if !ok {
		r.fail(key, "is required")
	}
	return v, ok
}

// String returns a required string field.
func (r *ExtReader) String(key string) string {
	v, _ := r.required(key)
	return v
}

// OptString returns an optional string field, or "" when absent.
func (r *ExtReader) OptString(key string) string {
	v, _ := r.get(key)
	return v
}

// get looks key up starting after the last pair found, so reading a header in its wire order costs one
// comparison per field.
func (r *ExtReader) get(key string) (string, bool) {
	i := r.ext.index(key, r.next)
	if i < 0 {
		return "", false
	}
	r.next = i + 2
	return r.ext[i+1], true
}

// Int64 returns a required integer field.
func (r *ExtReader) Int64(key string) int64 {
	v, ok := r.required(key)
	if !ok {
		return 0
	}
	return r.parseInt(key, v, 64)
}

// OptInt64 returns an optional integer field, or def when absent or empty.
func (r *ExtReader) OptInt64(key string, def int64) int64 {
	v, ok := r.get(key)
	if !ok || v == "" {
		return def
	}
	return r.parseInt(key, v, 64)
}

// Int32 returns a required 32-bit integer field.
func (r *ExtReader) Int32(key string) int32 {
	v, ok := r.required(key)
	if !ok {
		return 0
	}
	return int32(r.parseInt(key, v, 32))
}

// OptInt32 returns an optional 32-bit integer field, or def when absent or empty.
func (r *ExtReader) OptInt32(key string, def int32) int32 {
	v, ok := r.get(key)
	if !ok || v == "" {
		return def
	}
	return int32(r.parseInt(key, v, 32))
}

// Bool returns a required boolean field ("true"/"false", case-insensitive like Java's parseBoolean).
func (r *ExtReader) Bool(key string) bool {
	v, ok := r.required(key)
	return ok && parseJavaBool(v)
}

// OptBool returns an optional boolean field, or def when absent or empty.
func (r *ExtReader) OptBool(key string, def bool) bool {
	v, ok := r.get(key)
	if !ok || v == "" {
		return def
	}
	return parseJavaBool(v)
}

func (r *ExtReader) parseInt(key, v string, bits int) int64 {
	n, err := strconv.ParseInt(v, 10, bits)
	if err != nil {
		r.fail(key, "is not a valid "+strconv.Itoa(bits)+"-bit integer: "+strconv.Quote(v))
	}
	return n
}

// parseJavaBool follows Boolean.parseBoolean: only "true", in any case, is true.
func parseJavaBool(v string) bool {
	return len(v) == 4 && (v[0]|0x20) == 't' && (v[1]|0x20) == 'r' && (v[2]|0x20) == 'u' && (v[3]|0x20) == 'e'
}
