package remoting

import (
	"bytes"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// This file holds the small JSON reader and writer for remoting headers. Headers are on the path of
// every request, so they are scanned by hand instead of through reflection, and the reader accepts only
// what a header can hold: an object of numbers, strings, null and a string map, with other members
// skipped whatever their type.

// maxJSONDepth bounds the nesting of skipped values, so hostile input cannot exhaust the stack.
const maxJSONDepth = 64

// jsonReader scans one JSON value with a sticky error.
type jsonReader struct {
	b []byte
	// s, if set, is b as a string: strings without escapes are then sliced from it instead of
	// copied one by one, so a header costs one allocation for all its values.
	s string
	// scratch, if set, is where unescaped strings go in an aliased decode (see unescapeBuffer).
	scratch *[]byte
	i       int
	err     error
	// first is true until the first member of the object being read has been seen.
	first bool
}

func (r *jsonReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = malformed("json header at byte %d: %s", r.i, sprintf(format, args...))
	}
}

func (r *jsonReader) ws() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end or after an error.
func (r *jsonReader) peek() byte {
	r.ws()
	if r.err != nil || r.i >= len(r.b) {
		return 0
	}
	return r.b[r.i]
}

func (r *jsonReader) expect(c byte) bool {
	if r.peek() != c {
		if r.err == nil {
			if r.i >= len(r.b) {
				r.fail("unexpected end, want %q", c)
			} else {
				r.fail("unexpected %q, want %q", r.b[r.i], c)
			}
		}
		return false
	}
	r.i++
	return true
}

func (r *jsonReader) objectStart() {
	r.expect('{')
	r.first = true
}

// nextMember reports whether the current object has another member, consuming the separator.
func (r *jsonReader) nextMember() bool {
	if r.err != nil {
		return false
	}
	if r.peek() == '}' {
		r.i++
		return false
	}
	if !r.first && !r.expect(',') {
		return false
	}
	r.first = false
	return r.err == nil
}

// key reads a member name and its colon. Names of the header and of common ext fields come from a
// fixed table, so reading them allocates nothing.
func (r *jsonReader) key() string {
	if r.peek() == '"' {
		if end := r.plainStringEnd(r.i + 1); end > 0 {
			if k, ok := internedKeys[string(r.b[r.i+1:end])]; ok { // no allocation: map lookup by []byte
				r.i = end + 1
				r.expect(':')
				return k
			}
		}
	}
	k := r.str()
	r.expect(':')
	return k
}

// plainStringEnd returns the index of the quote closing a string that starts at from and has no
// escapes or control characters, or -1.
func (r *jsonReader) plainStringEnd(from int) int {
	for i := from; i < len(r.b); i++ {
		switch c := r.b[i]; {
		case c == '"':
			return i
		case c == '\\' || c < 0x20:
			return -1
		}
	}
	return -1
}

// internedKeys are the member names that appear in nearly every header.
var internedKeys = func() map[string]string {
	names := []string{
		"code", "language", "version", "opaque", "flag", "remark", "extFields", "serializeTypeCurrentRPC",
		// send
		"producerGroup", "topic", "defaultTopic", "defaultTopicQueueNums", "queueId", "sysFlag", "bornTimestamp",
		"properties", "reconsumeTimes", "unitMode", "batch", "maxReconsumeTimes",
		"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n",
		// send answers
		"msgId", "queueOffset", "MSG_REGION", "TRACE_ON", "transactionId",
		// pull and offsets
		"consumerGroup", "maxMsgNums", "commitOffset", "suspendTimeoutMillis", "subscription", "subVersion",
		"expressionType", "nextBeginOffset", "minOffset", "maxOffset", "suggestWhichBrokerId", "offset",
	}
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[n] = n
	}
	return m
}()

// end checks that nothing but white space follows the value.
func (r *jsonReader) end() {
	if r.err == nil && r.peek() != 0 {
		r.fail("trailing data")
	}
}

// null consumes a null literal if one is next.
func (r *jsonReader) null() bool {
	if r.peek() == 'n' {
		r.literal("null")
		return true
	}
	return false
}

func (r *jsonReader) literal(word string) {
	if len(r.b)-r.i < len(word) || string(r.b[r.i:r.i+len(word)]) != word {
		r.fail("invalid literal, want %s", word)
		return
	}
	r.i += len(word)
}

// number returns the text of a JSON number.
func (r *jsonReader) number() []byte {
	r.ws()
	start := r.i
	if r.i < len(r.b) && r.b[r.i] == '-' {
		r.i++
	}
	digits := r.i
	for r.i < len(r.b) {
		c := r.b[r.i]
		if (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-' {
			r.i++
			continue
		}
		break
	}
	if r.i == digits {
		r.fail("want a number")
		return nil
	}
	return r.b[start:r.i]
}

// integer reads a JSON integer within [lo, hi].
func (r *jsonReader) integer(key string, lo, hi int64) int64 {
	text := r.number()
	if r.err != nil {
		return 0
	}
	n, err := strconv.ParseInt(string(text), 10, 64)
	if err != nil || n < lo || n > hi {
		r.fail("%s: %q is not an integer in [%d, %d]", key, text, lo, hi)
		return 0
	}
	return n
}

// str reads a JSON string.
func (r *jsonReader) str() string {
	if !r.expect('"') {
		return ""
	}
	start := r.i
	// Fast path: no escapes.
	for r.i < len(r.b) {
		c := r.b[r.i]
		if c == '"' {
			var s string
			if r.s != "" {
				s = r.s[start:r.i]
			} else {
				s = string(r.b[start:r.i])
			}
			r.i++
			return s
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			r.fail("control character in string")
			return ""
		}
		r.i++
	}
	// Escapes only shrink the text, so the raw length up to the closing quote bounds the result and
	// one buffer holds it.
	buf := r.unescapeBuffer(r.i - start + r.escapedLen(r.i))
	buf = append(buf, r.b[start:r.i]...)
	for r.i < len(r.b) {
		c := r.b[r.i]
		switch {
		case c == '"':
			r.i++
			return r.unescaped(buf)
		case c < 0x20:
			r.fail("control character in string")
			return ""
		case c != '\\':
			buf = append(buf, c)
			r.i++
			continue
		}
		r.i++
		if r.i >= len(r.b) {
			break
		}
		e := r.b[r.i]
		r.i++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			ru := r.hex4()
			if utf16.IsSurrogate(ru) {
				ru2 := utf8.RuneError
				if r.i+1 < len(r.b) && r.b[r.i] == '\\' && r.b[r.i+1] == 'u' {
					r.i += 2
					ru2 = r.hex4()
				}
				ru = utf16.DecodeRune(ru, ru2)
			}
			buf = utf8.AppendRune(buf, ru)
		default:
			r.fail("invalid escape \\%c", e)
			return ""
		}
		if r.err != nil {
			return ""
		}
	}
	r.fail("unterminated string")
	return ""
}

// unescapeBuffer returns an empty buffer with room for n bytes of an unescaped string: a new one,
// or, in an aliased decode, the free end of the command's scratch buffer, so that a header whose
// values need unescaping (RocketMQ's property separators travel as \u0001 and \u0002) costs no
// allocation once the scratch has grown to its size.
func (r *jsonReader) unescapeBuffer(n int) []byte {
	if r.scratch == nil {
		return make([]byte, 0, n)
	}
	if s := *r.scratch; cap(s)-len(s) < n {
		// Strings already made keep the old array alive.
		*r.scratch = make([]byte, 0, max(2*cap(s), n, 256))
	}
	s := *r.scratch
	return s[len(s) : len(s) : len(s)+n]
}

// unescaped returns buf, filled from unescapeBuffer, as a string without copying it, and claims its
// room in the scratch buffer.
func (r *jsonReader) unescaped(buf []byte) string {
	if len(buf) == 0 {
		return ""
	}
	if r.scratch != nil {
		if s := *r.scratch; len(buf) <= cap(s)-len(s) {
			*r.scratch = s[:len(s)+len(buf)]
		}
	}
	// Nothing writes buf again: a new buffer is dropped, and scratch room is handed out once per decode.
	return unsafe.String(&buf[0], len(buf))
}

// escapedLen returns the raw length of the rest of a string starting at from, up to its closing quote
// (or the end of the input).
func (r *jsonReader) escapedLen(from int) int {
	for i := from; i < len(r.b); i++ {
		switch r.b[i] {
		case '"':
			return i - from
		case '\\':
			i++
		}
	}
	return len(r.b) - from
}

func (r *jsonReader) hex4() rune {
	if len(r.b)-r.i < 4 {
		r.fail("short \\u escape")
		return 0
	}
	n, err := strconv.ParseUint(string(r.b[r.i:r.i+4]), 16, 32)
	if err != nil {
		r.fail("invalid \\u escape")
		return 0
	}
	r.i += 4
	return rune(n)
}

// stringFields reads an object whose values are strings. Numbers and booleans are kept as their text
// (Java peers always send strings, but a lenient reader costs nothing); null values are dropped.
func (r *jsonReader) stringFields(f Fields) Fields {
	// Each member of a string object has four quotes; counting them in what is left of the header sizes
	// the slice once (a send header has 13 fields, its answer 5) instead of growing it. The bound keeps
	// a hostile header from buying a large slice with quotes alone. f's room is reused when it suffices.
	if need := 2 * min(bytes.Count(r.b[r.i:], quote)/4, 64); cap(f) < need {
		f = make(Fields, 0, need)
	}
	f = f[:0]
	var keys keySet
	outer := r.first
	r.objectStart()
	for r.nextMember() {
		k := r.key()
		switch c := r.peek(); {
		case c == '"':
			f = keys.add(f, k, r.str())
		case c == 'n':
			r.null()
		case c == 't':
			r.literal("true")
			f = keys.add(f, k, "true")
		case c == 'f':
			r.literal("false")
			f = keys.add(f, k, "false")
		case c == '-' || (c >= '0' && c <= '9'):
			f = keys.add(f, k, string(r.number()))
		default:
			r.fail("ext field %q: value must be a string", k)
		}
	}
	r.first = outer
	if len(f) == 0 {
		return nil // same as absent, as the binary form has it
	}
	return f
}

var quote = []byte{'"'}

// skipValue skips one value of any type.
func (r *jsonReader) skipValue(depth int) {
	if depth > maxJSONDepth {
		r.fail("nesting deeper than %d", maxJSONDepth)
		return
	}
	switch c := r.peek(); {
	case c == '"':
		r.str()
	case c == '{':
		outer := r.first
		r.objectStart()
		for r.nextMember() {
			r.key()
			r.skipValue(depth + 1)
		}
		r.first = outer
	case c == '[':
		r.i++
		if r.peek() == ']' {
			r.i++
			return
		}
		for r.err == nil {
			r.skipValue(depth + 1)
			if r.peek() == ',' {
				r.i++
				continue
			}
			r.expect(']')
			return
		}
	case c == 't':
		r.literal("true")
	case c == 'f':
		r.literal("false")
	case c == 'n':
		r.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		r.number()
	default:
		r.fail("unexpected value")
	}
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as encoding/json does,
// so the output is always valid JSON. Bodies that must be written by hand (fastjson's map forms) use it.
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		ru, size := utf8.DecodeRuneInString(s[i:])
		if ru == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
