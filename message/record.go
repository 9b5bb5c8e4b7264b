package message

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"
)

// Magic codes of a stored record. Part of the wire format; do not change.
const (
	MagicV1    uint32 = 0xDAA320A7 // -626843481: 1-byte topic length (what clients decode)
	MagicV2    uint32 = 0xDAA320AB // -626843477: 2-byte topic length (5.x); decoded, never written
	MagicBlank uint32 = 0xCBD43194 // -875286124: end-of-segment filler in the commit log
)

// Byte positions of the fixed part of a stored record (PROTOCOL.md §4.1).
// Fields after BORNHOST move when a host is IPv6, so only the ones before it
// have fixed positions. Part of the wire format; do not change.
const (
	posTotalSize      = 0
	posMagic          = 4
	posBodyCRC        = 8
	posQueueID        = 12
	posFlag           = 16
	posQueueOffset    = 20
	posPhysicalOffset = 28
	posSysFlag        = 36
	posBornTimestamp  = 40
	posBornHost       = 48

	// MinRecordSize is the size of a record with IPv4 hosts and an empty
	// body, topic and properties.
	MinRecordSize = 91
	// BlankSize is the least size of a blank marker (TOTALSIZE + MAGIC).
	BlankSize = 8
	// MaxTopicLength is the longest topic the V1 layout (1-byte length) holds.
	MaxTopicLength = 127
)

// ErrCorrupt marks a record that fails its checks: a size out of bounds, an
// unknown magic, lengths that overrun the record, or a body CRC mismatch.
// Test for it with errors.Is or IsCorrupt.
var ErrCorrupt = errors.New("message: corrupt record")

// ErrTopicTooLong is returned by AppendRecord when the topic is empty or
// longer than MaxTopicLength bytes.
var ErrTopicTooLong = errors.New("message: topic empty or longer than 127 bytes")

// IsCorrupt reports whether err marks a corrupt record.
func IsCorrupt(err error) bool { return errors.Is(err, ErrCorrupt) }

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

func hostLen(sysFlag, v6bit int32) int {
	if sysFlag&v6bit != 0 {
		return 20
	}
	return 8
}

// RecordSize returns the stored size of a record with the given lengths.
func RecordSize(bodyLen, topicLen, propsLen int, sysFlag int32) int {
	return MinRecordSize - 16 + hostLen(sysFlag, FlagBornHostV6) + hostLen(sysFlag, FlagStoreHostV6) +
		bodyLen + topicLen + propsLen
}

// BodyCRC returns the BODYCRC of body: IEEE CRC32 masked to 31 bits.
func BodyCRC(body []byte) uint32 { return crc32.ChecksumIEEE(body) & 0x7FFFFFFF }

// hostFlags returns sysFlag with the IPv6 bits set from the hosts.
func hostFlags(sysFlag int32, born, store netip.AddrPort) int32 {
	sysFlag &^= FlagBornHostV6 | FlagStoreHostV6
	if a := born.Addr(); a.Is6() && !a.Is4In6() {
		sysFlag |= FlagBornHostV6
	}
	if a := store.Addr(); a.Is6() && !a.Is4In6() {
		sysFlag |= FlagStoreHostV6
	}
	return sysFlag
}

// EncodedSize returns the size AppendRecord will produce for m.
func EncodedSize(m *Message) int {
	propsLen := PropertiesLength(m.Properties)
	if m.Properties == nil {
		propsLen = len(m.EncodedProperties)
	}
	return RecordSize(len(m.Body), len(m.Topic), propsLen, hostFlags(m.SysFlag, m.BornHost, m.StoreHost))
}

// AppendRecord appends the stored (V1) encoding of m to dst. It sets the
// IPv6 host bits of SYSFLAG from the addresses (an IPv4 or IPv4-in-IPv6
// address is written as 4 bytes; brokers should use IPv4, see PROTOCOL.md
// §4.4) and computes BODYCRC. QueueOffset, CommitLogOffset and StoreTimestamp
// are written as they are in m; a store that assigns them later uses
// PatchRecord. AppendRecord returns ErrTopicTooLong, ErrPropertiesTooLong or
// ErrBadProperty and leaves dst unchanged when m cannot be encoded.
func AppendRecord(dst []byte, m *Message) ([]byte, error) {
	if len(m.Topic) == 0 || len(m.Topic) > MaxTopicLength {
		return dst, ErrTopicTooLong
	}
	start := len(dst)
	sysFlag := hostFlags(m.SysFlag, m.BornHost, m.StoreHost)
	be := binary.BigEndian
	dst = be.AppendUint32(dst, 0) // TOTALSIZE, set below
	dst = be.AppendUint32(dst, MagicV1)
	dst = be.AppendUint32(dst, BodyCRC(m.Body))
	dst = be.AppendUint32(dst, uint32(m.QueueID))
	dst = be.AppendUint32(dst, uint32(m.Flag))
	dst = be.AppendUint64(dst, uint64(m.QueueOffset))
	dst = be.AppendUint64(dst, uint64(m.CommitLogOffset))
	dst = be.AppendUint32(dst, uint32(sysFlag))
	dst = be.AppendUint64(dst, uint64(m.BornTimestamp))
	dst = appendHost(dst, m.BornHost, sysFlag&FlagBornHostV6 != 0)
	dst = be.AppendUint64(dst, uint64(m.StoreTimestamp))
	dst = appendHost(dst, m.StoreHost, sysFlag&FlagStoreHostV6 != 0)
	dst = be.AppendUint32(dst, uint32(m.ReconsumeTimes))
	dst = be.AppendUint64(dst, uint64(m.PreparedTransactionOffset))
	dst = be.AppendUint32(dst, uint32(len(m.Body)))
	dst = append(dst, m.Body...)
	dst = append(dst, byte(len(m.Topic)))
	dst = append(dst, m.Topic...)
	propsPos := len(dst)
	dst = be.AppendUint16(dst, 0) // PROPERTIESLENGTH, set below
	if m.Properties == nil {
		if len(m.EncodedProperties) > MaxPropertiesLength {
			return dst[:start], ErrPropertiesTooLong
		}
		dst = append(dst, m.EncodedProperties...)
	} else {
		// One pass over the map validates and encodes (this is the append hot
		// path; three passes cost a third of an append of a small message).
		var err error
		if dst, err = appendPropertiesChecked(dst, m.Properties); err != nil {
			return dst[:start], err
		}
	}
	be.PutUint16(dst[propsPos:], uint16(len(dst)-propsPos-2))
	be.PutUint32(dst[start:], uint32(len(dst)-start))
	return dst, nil
}

func appendHost(dst []byte, h netip.AddrPort, v6 bool) []byte {
	a := h.Addr()
	if v6 {
		b := a.As16()
		dst = append(dst, b[:]...)
	} else {
		var b [4]byte
		if a.Is4() || a.Is4In6() {
			b = a.Unmap().As4()
		}
		dst = append(dst, b[:]...)
	}
	return binary.BigEndian.AppendUint32(dst, uint32(h.Port()))
}

// PatchRecord overwrites QUEUEOFFSET, PHYSICALOFFSET and STORETIMESTAMP of an
// encoded record in place. rec must be a whole record produced by
// AppendRecord.
func PatchRecord(rec []byte, queueOffset, commitLogOffset, storeTimestamp int64) {
	be := binary.BigEndian
	be.PutUint64(rec[posQueueOffset:], uint64(queueOffset))
	be.PutUint64(rec[posPhysicalOffset:], uint64(commitLogOffset))
	sysFlag := int32(be.Uint32(rec[posSysFlag:]))
	be.PutUint64(rec[posBornHost+hostLen(sysFlag, FlagBornHostV6):], uint64(storeTimestamp))
}

// RecordView is a parsed record whose variable fields alias the input bytes.
// It is what ParseRecord returns; it allocates nothing.
type RecordView struct {
	TotalSize                 int32
	Magic                     uint32
	BodyCRC                   uint32
	QueueID                   int32
	Flag                      int32
	QueueOffset               int64
	CommitLogOffset           int64
	SysFlag                   int32
	BornTimestamp             int64
	BornHost                  []byte // 4 or 16 address bytes then a 4-byte port
	StoreTimestamp            int64
	StoreHost                 []byte
	ReconsumeTimes            int32
	PreparedTransactionOffset int64
	Body                      []byte
	Topic                     []byte
	Properties                []byte
}

// PeekSize returns the TOTALSIZE and MAGICCODE at the start of b. It needs 8
// bytes and reports ok=false when b is shorter.
func PeekSize(b []byte) (size int32, magic uint32, ok bool) {
	if len(b) < BlankSize {
		return 0, 0, false
	}
	return int32(binary.BigEndian.Uint32(b)), binary.BigEndian.Uint32(b[posMagic:]), true
}

// recordReader reads fields sequentially with a sticky error.
type recordReader struct {
	b   []byte
	off int
	bad bool
}

func (r *recordReader) next(n int) []byte {
	if r.bad || n < 0 || n > len(r.b)-r.off {
		r.bad = true
		return nil
	}
	s := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return s
}

func (r *recordReader) u32() uint32 {
	if b := r.next(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *recordReader) u64() uint64 {
	if b := r.next(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// ParseRecord parses the record at the start of b. It checks that TOTALSIZE
// fits in b, that the magic is V1 or V2, that every length stays inside the
// record and that the lengths add up to TOTALSIZE exactly; with checkCRC it
// also verifies BODYCRC. Every failure is an ErrCorrupt. A blank marker is
// reported as an ErrCorrupt too; callers that walk a commit log check for it
// first with PeekSize.
func ParseRecord(b []byte, checkCRC bool) (RecordView, error) {
	var v RecordView
	size, magic, ok := PeekSize(b)
	if !ok {
		return v, corruptf("%d bytes, need at least %d", len(b), BlankSize)
	}
	if magic != MagicV1 && magic != MagicV2 {
		return v, corruptf("magic %#x", magic)
	}
	if size < MinRecordSize || int(size) > len(b) {
		return v, corruptf("total size %d with %d bytes available", size, len(b))
	}
	r := recordReader{b: b[:size]}
	v.TotalSize = int32(r.u32())
	v.Magic = r.u32()
	v.BodyCRC = r.u32()
	v.QueueID = int32(r.u32())
	v.Flag = int32(r.u32())
	v.QueueOffset = int64(r.u64())
	v.CommitLogOffset = int64(r.u64())
	v.SysFlag = int32(r.u32())
	v.BornTimestamp = int64(r.u64())
	v.BornHost = r.next(hostLen(v.SysFlag, FlagBornHostV6))
	v.StoreTimestamp = int64(r.u64())
	v.StoreHost = r.next(hostLen(v.SysFlag, FlagStoreHostV6))
	v.ReconsumeTimes = int32(r.u32())
	v.PreparedTransactionOffset = int64(r.u64())
	v.Body = r.next(int(int32(r.u32())))
	var topicLen int
	if v.Magic == MagicV2 {
		if t := r.next(2); t != nil {
			topicLen = int(binary.BigEndian.Uint16(t))
		}
	} else if t := r.next(1); t != nil {
		topicLen = int(t[0])
	}
	v.Topic = r.next(topicLen)
	var propsLen int
	if p := r.next(2); p != nil {
		propsLen = int(int16(binary.BigEndian.Uint16(p)))
	}
	v.Properties = r.next(propsLen)
	if r.bad {
		return RecordView{}, corruptf("field lengths overrun total size %d", size)
	}
	if r.off != int(size) {
		return RecordView{}, corruptf("fields end at %d, total size %d", r.off, size)
	}
	if checkCRC && BodyCRC(v.Body) != v.BodyCRC {
		return RecordView{}, corruptf("body CRC %#x, stored %#x", BodyCRC(v.Body), v.BodyCRC)
	}
	return v, nil
}

func decodeHost(b []byte) netip.AddrPort {
	port := uint16(binary.BigEndian.Uint32(b[len(b)-4:]))
	if len(b) == 20 {
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[:16])), port)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), port)
}

// Message converts the view to a Message. Body aliases the view's bytes
// unless copyBody is set; Topic and Properties are copied.
func (v *RecordView) Message(copyBody bool) *Message {
	m := new(Message)
	v.fill(m, string(v.Topic))
	if copyBody {
		m.Body = append([]byte(nil), v.Body...)
	}
	return m
}

// fill sets m from the view, Body aliasing it, with topic as Topic.
func (v *RecordView) fill(m *Message, topic string) {
	*m = Message{
		Topic:                     topic,
		QueueID:                   v.QueueID,
		Flag:                      v.Flag,
		Body:                      v.Body,
		Properties:                ParseProperties(string(v.Properties)),
		SysFlag:                   v.SysFlag,
		BornTimestamp:             v.BornTimestamp,
		BornHost:                  decodeHost(v.BornHost),
		StoreTimestamp:            v.StoreTimestamp,
		StoreHost:                 decodeHost(v.StoreHost),
		ReconsumeTimes:            v.ReconsumeTimes,
		PreparedTransactionOffset: v.PreparedTransactionOffset,
		QueueOffset:               v.QueueOffset,
		CommitLogOffset:           v.CommitLogOffset,
		StoreSize:                 v.TotalSize,
		BodyCRC:                   v.BodyCRC,
	}
}

// DecodeRecord decodes the record at the start of b, verifying its body CRC,
// and returns it with the number of bytes it occupies. The returned Body is a
// copy. Errors are ErrCorrupt.
func DecodeRecord(b []byte) (*Message, int, error) {
	v, err := ParseRecord(b, true)
	if err != nil {
		return nil, 0, err
	}
	return v.Message(true), int(v.TotalSize), nil
}

// DecodeRecords decodes records laid back to back, as in a PULL_MESSAGE
// response body, verifying their body CRCs. It stops at the first corrupt
// record and returns the messages before it together with the error.
//
// The bodies alias b, which the caller must leave unchanged, and the messages
// are allocated together, topic strings shared: decoding a pull costs a few
// allocations per message rather than a copy of each body.
func DecodeRecords(b []byte) ([]*Message, error) {
	n := 0
	for rest := b; len(rest) > 0; n++ {
		size, _, ok := PeekSize(rest)
		if !ok || size <= 0 || int(size) > len(rest) {
			n++ // the corrupt one, which the loop below reports
			break
		}
		rest = rest[size:]
	}
	slab := make([]Message, n)
	msgs := make([]*Message, 0, n)
	topic := ""
	for len(b) > 0 {
		v, err := ParseRecord(b, true)
		if err != nil {
			return msgs, err
		}
		if string(v.Topic) != topic {
			topic = string(v.Topic)
		}
		m := &slab[len(msgs)]
		v.fill(m, topic)
		msgs = append(msgs, m)
		b = b[v.TotalSize:]
	}
	return msgs, nil
}

// StoreTimestampOf returns the STORETIMESTAMP of the record starting at b,
// which needs to hold the record up to that field (64 bytes with an IPv4
// born host).
func StoreTimestampOf(b []byte) (int64, error) {
	if len(b) < posSysFlag+4 {
		return 0, corruptf("%d bytes, too short for a record head", len(b))
	}
	sysFlag := int32(binary.BigEndian.Uint32(b[posSysFlag:]))
	pos := posBornHost + hostLen(sysFlag, FlagBornHostV6)
	if len(b) < pos+8 {
		return 0, corruptf("%d bytes, too short for a record head", len(b))
	}
	return int64(binary.BigEndian.Uint64(b[pos:])), nil
}
