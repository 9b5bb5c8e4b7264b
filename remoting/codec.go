package remoting

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unsafe"
)

// Frame limits. MaxHeaderLength is part of the wire format (a 24-bit field).
const (
	DefaultMaxFrameLength = 16 << 20 // Java's com.rocketmq.remoting.frameMaxLength default
	MaxHeaderLength       = 1<<24 - 1
	lengthPrefix          = 4
)

var (
	// ErrMalformedFrame is returned (wrapped, with the reason) when a frame or header cannot be
	// decoded. A connection that delivered one cannot be trusted to be in sync and is closed.
	ErrMalformedFrame = errors.New("remoting: malformed frame")

	// ErrFrameTooLarge is returned (wrapped) when a frame's length prefix exceeds the limit, before any
	// buffer for it is allocated, or when a command is too large to encode.
	ErrFrameTooLarge = errors.New("remoting: frame too large")
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedFrame, fmt.Sprintf(format, args...))
}

// ReadFrame reads one frame from r and returns its bytes after the length prefix (serialize type,
// header length, header, body), ready for DecodeFrame. The length is checked against maxFrame (the
// value of the prefix, as Java counts it) before the buffer is allocated. io.EOF is returned only when r
// ends cleanly between frames.
func ReadFrame(r io.Reader, maxFrame int) ([]byte, error) {
	var prefix [lengthPrefix]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(prefix[:])
	if n < 4 {
		return nil, malformed("frame length %d is shorter than its header length field", n)
	}
	if uint64(n) > uint64(maxFrame) {
		return nil, fmt.Errorf("%w: frame length %d exceeds the limit of %d bytes", ErrFrameTooLarge, n, maxFrame)
	}
	frame := make([]byte, n)
	if _, err := io.ReadFull(r, frame); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return frame, nil
}

// DecodeFrame decodes a frame as returned by ReadFrame. The command's Body aliases frame.
func DecodeFrame(frame []byte) (*Command, error) {
	cmd := new(Command)
	if err := DecodeFrameInto(cmd, frame); err != nil {
		return nil, err
	}
	return cmd, nil
}

// DecodeFrameInto is DecodeFrame into a command of the caller's, which it overwrites, reusing the
// room of its ExtFields: a reader that is done with each command before the next saves allocating
// it and its fields.
func DecodeFrameInto(cmd *Command, frame []byte) error {
	return decodeFrame(cmd, frame, false)
}

// DecodeFrameAliased is DecodeFrameInto without copying the header's strings: the remark, keys and
// values alias frame, like Body, and change when frame's memory is reused. It is for a reader that
// decodes into memory of its own, reuses it after the command's consumer returns, and has that
// consumer copy whatever it keeps (transport's inline handlers): a header then costs no allocation.
func DecodeFrameAliased(cmd *Command, frame []byte) error {
	return decodeFrame(cmd, frame, true)
}

// Own copies the header strings of a command from DecodeFrameAliased (remark, ext field keys and
// values) into memory of the command's own, in one allocation, so that they stay valid once the
// frame's memory is reused. Body still aliases the frame.
func (c *Command) Own() {
	n := len(c.Remark)
	for _, f := range c.ExtFields {
		n += len(f)
	}
	c.scratch = nil
	if n == 0 {
		return
	}
	buf := make([]byte, 0, n)
	own := func(s string) string {
		if s == "" {
			return ""
		}
		start := len(buf)
		buf = append(buf, s...) // within capacity: buf never moves
		return unsafe.String(&buf[start], len(s))
	}
	c.Remark = own(c.Remark)
	for i, f := range c.ExtFields {
		c.ExtFields[i] = own(f)
	}
}

func decodeFrame(cmd *Command, frame []byte, alias bool) error {
	if len(frame) < 4 {
		return malformed("frame of %d bytes has no header length field", len(frame))
	}
	word := binary.BigEndian.Uint32(frame)
	st := SerializeType(word >> 24)
	headerLen := int(word & MaxHeaderLength)
	if headerLen > len(frame)-4 {
		return malformed("header length %d exceeds the %d bytes left in the frame", headerLen, len(frame)-4)
	}
	header := frame[4 : 4+headerLen]
	scratch := cmd.scratch[:0]
	*cmd = Command{SerializeType: st, ExtFields: cmd.ExtFields[:0]}
	if alias {
		cmd.scratch = scratch
	}
	var err error
	switch st {
	case JSON:
		err = decodeJSONHeader(header, cmd, alias)
	case RocketMQ:
		err = decodeBinaryHeader(header, cmd, alias)
	default:
		err = malformed("unknown serialize type %d", st)
	}
	if err != nil {
		return err
	}
	if len(cmd.ExtFields) == 0 {
		cmd.ExtFields = nil // as DecodeFrame has always returned a header without fields
	}
	if body := frame[4+headerLen:]; len(body) > 0 {
		cmd.Body = body
	}
	return nil
}

// AppendFrame appends the whole frame of c (length prefix, header and body) to dst.
func AppendFrame(dst []byte, c *Command) ([]byte, error) {
	dst, err := AppendFrameHeader(dst, c, len(c.Body))
	if err != nil {
		return dst, err
	}
	return append(dst, c.Body...), nil
}

// AppendFrameHeader appends the length prefix and header of c to dst for a body of bodyLen bytes that
// the caller writes after it (so large bodies can be written from where they are, without a copy).
// It has no side effects on c, so it can be called again to retry.
func AppendFrameHeader(dst []byte, c *Command, bodyLen int) ([]byte, error) {
	start := len(dst)
	if len(c.ExtFields)%2 != 0 {
		return dst, fmt.Errorf("remoting: ext field %q has no value", c.ExtFields[len(c.ExtFields)-1])
	}
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0) // length prefix and serialize type + header length
	switch c.SerializeType {
	case JSON:
		dst = appendJSONHeader(dst, c)
	case RocketMQ:
		dst = appendBinaryHeader(dst, c)
	default:
		return dst[:start], fmt.Errorf("remoting: cannot encode serialize type %d", c.SerializeType)
	}
	headerLen := len(dst) - start - 8
	if headerLen > MaxHeaderLength {
		return dst[:start], fmt.Errorf("%w: header of %d bytes exceeds %d", ErrFrameTooLarge, headerLen, MaxHeaderLength)
	}
	total := 4 + int64(headerLen) + int64(bodyLen)
	if total > 1<<31-1 {
		return dst[:start], fmt.Errorf("%w: frame of %d bytes", ErrFrameTooLarge, total)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(total))
	binary.BigEndian.PutUint32(dst[start+4:], uint32(c.SerializeType)<<24|uint32(headerLen))
	return dst, nil
}

// appendJSONHeader writes the header as fastjson does: header keys in alphabetical order, remark and
// extFields omitted when empty. Ext fields keep their order.
func appendJSONHeader(dst []byte, c *Command) []byte {
	dst = append(dst, `{"code":`...)
	dst = strconv.AppendInt(dst, int64(c.Code), 10)
	if len(c.ExtFields) > 0 {
		dst = append(dst, `,"extFields":{`...)
		for i := 0; i+1 < len(c.ExtFields); i += 2 {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSONString(dst, c.ExtFields[i])
			dst = append(dst, ':')
			dst = AppendJSONString(dst, c.ExtFields[i+1])
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `,"flag":`...)
	dst = strconv.AppendInt(dst, int64(c.Flag), 10)
	dst = append(dst, `,"language":"`...)
	dst = append(dst, c.Language.String()...)
	dst = append(dst, `","opaque":`...)
	dst = strconv.AppendInt(dst, int64(c.Opaque), 10)
	if c.Remark != "" {
		dst = append(dst, `,"remark":`...)
		dst = AppendJSONString(dst, c.Remark)
	}
	dst = append(dst, `,"serializeTypeCurrentRPC":"JSON","version":`...)
	dst = strconv.AppendInt(dst, int64(c.Version), 10)
	return append(dst, '}')
}

// bytesString is b as a string, copied, or aliasing b when alias is set (DecodeFrameAliased).
func bytesString(b []byte, alias bool) string {
	if alias {
		return unsafe.String(unsafe.SliceData(b), len(b))
	}
	return string(b)
}

func decodeJSONHeader(b []byte, c *Command, alias bool) error {
	r := jsonReader{b: b, s: bytesString(b, alias)}
	if alias {
		r.scratch = &c.scratch
	}
	r.objectStart()
	for r.nextMember() {
		key := r.key()
		switch key {
		case "code":
			c.Code = int16(r.integer(key, -1<<15, 1<<15-1))
		case "version":
			c.Version = int16(r.integer(key, -1<<15, 1<<15-1))
		case "opaque":
			c.Opaque = int32(r.integer(key, -1<<31, 1<<31-1))
		case "flag":
			c.Flag = int32(r.integer(key, -1<<31, 1<<31-1))
		case "language":
			if r.peek() == '"' {
				c.Language = parseLanguage(r.str())
			} else if !r.null() {
				c.Language = Language(r.integer(key, 0, 255))
			}
		case "remark":
			if !r.null() {
				c.Remark = r.str()
			}
		case "extFields":
			if !r.null() {
				c.ExtFields = r.stringFields(c.ExtFields)
			}
		default:
			r.skipValue(0)
		}
	}
	r.end()
	return r.err
}

func appendBinaryHeader(dst []byte, c *Command) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(c.Code))
	dst = append(dst, byte(c.Language))
	dst = binary.BigEndian.AppendUint16(dst, uint16(c.Version))
	dst = binary.BigEndian.AppendUint32(dst, uint32(c.Opaque))
	dst = binary.BigEndian.AppendUint32(dst, uint32(c.Flag))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(c.Remark)))
	dst = append(dst, c.Remark...)
	lenAt := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	for i := 0; i+1 < len(c.ExtFields); i += 2 {
		k, v := c.ExtFields[i], c.ExtFields[i+1]
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(k)))
		dst = append(dst, k...)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(v)))
		dst = append(dst, v...)
	}
	binary.BigEndian.PutUint32(dst[lenAt:], uint32(len(dst)-lenAt-4))
	return dst
}

// countBinaryExt counts the fields of a binary ext block and reports whether they fill it exactly; it
// stops at the first length that runs past the block.
func countBinaryExt(b []byte) (n int, whole bool) {
	for len(b) >= 2 {
		kl := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+kl+4 {
			return n, false
		}
		vl := binary.BigEndian.Uint32(b[2+kl:])
		if uint64(len(b)) < uint64(2+kl+4)+uint64(vl) { // in 64 bits: an int may have 32
			return n, false
		}
		b = b[2+kl+4+int(vl):]
		n++
	}
	return n, len(b) == 0
}

// binaryReader reads big-endian fields with a sticky error: after the first short read every read
// returns zero values, and err says where decoding stopped.
type binaryReader struct {
	b   []byte
	err error
}

func (r *binaryReader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = malformed("binary header: %s needs %d bytes, %d left", what, n, len(r.b))
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *binaryReader) u8(what string) uint8 {
	if v := r.take(1, what); v != nil {
		return v[0]
	}
	return 0
}

func (r *binaryReader) u16(what string) uint16 {
	if v := r.take(2, what); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *binaryReader) u32(what string) uint32 {
	if v := r.take(4, what); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

// binaryExtError says where a binary ext block that countBinaryExt rejected goes wrong.
func binaryExtError(block []byte) error {
	ext := binaryReader{b: block}
	for ext.err == nil {
		ext.take(int(ext.u16("ext key length")), "ext key")
		ext.take(int(int32(ext.u32("ext value length"))), "ext value")
	}
	return ext.err
}

func decodeBinaryHeader(b []byte, c *Command, alias bool) error {
	r := binaryReader{b: b}
	c.Code = int16(r.u16("code"))
	c.Language = Language(r.u8("language"))
	c.Version = int16(r.u16("version"))
	c.Opaque = int32(r.u32("opaque"))
	c.Flag = int32(r.u32("flag"))
	c.Remark = bytesString(r.take(int(int32(r.u32("remark length"))), "remark"), alias)
	extLen := int(int32(r.u32("ext length")))
	block := r.take(extLen, "ext fields")
	if r.err != nil || len(block) == 0 {
		return r.err
	}
	n, whole := countBinaryExt(block)
	if !whole {
		return binaryExtError(block)
	}
	// One string holds every key and value, and one slice their headers. The lengths were checked by
	// countBinaryExt.
	all := bytesString(block, alias)
	if cap(c.ExtFields) < 2*min(n, 64) {
		c.ExtFields = make(Fields, 0, 2*min(n, 64))
	}
	var keys keySet
	for p := 0; p < len(block); {
		kl := int(binary.BigEndian.Uint16(block[p:]))
		k := all[p+2 : p+2+kl]
		p += 2 + kl
		vl := int(binary.BigEndian.Uint32(block[p:]))
		v := all[p+4 : p+4+vl]
		p += 4 + vl
		c.ExtFields = keys.add(c.ExtFields, k, v)
	}
	// Bytes after the ext block are ignored, as Java does.
	return r.err
}
