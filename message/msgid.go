package message

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"sync"
	"time"
)

// ErrBadMsgID is returned by ParseOffsetMsgID for a string that is not 32
// (IPv4) or 56 (IPv6) hex digits.
var ErrBadMsgID = errors.New("message: offset message id is not 32 or 56 hex digits")

// AppendOffsetMsgID appends the offset message id of (storeHost,
// commitLogOffset) to dst: uppercase hex of address (4 or 16 bytes), port
// (int32) and offset (int64), PROTOCOL.md §4.5.
func AppendOffsetMsgID(dst []byte, storeHost netip.AddrPort, commitLogOffset int64) []byte {
	var raw [28]byte
	n := 0
	a := storeHost.Addr().Unmap()
	if a.Is6() {
		b := a.As16()
		n = copy(raw[:], b[:])
	} else {
		var b [4]byte
		if a.Is4() {
			b = a.As4()
		}
		n = copy(raw[:], b[:])
	}
	binary.BigEndian.PutUint32(raw[n:], uint32(storeHost.Port()))
	binary.BigEndian.PutUint64(raw[n+4:], uint64(commitLogOffset))
	return appendUpperHex(dst, raw[:n+12])
}

// OffsetMsgID returns the offset message id of (storeHost, commitLogOffset).
func OffsetMsgID(storeHost netip.AddrPort, commitLogOffset int64) string {
	var buf [56]byte
	return string(AppendOffsetMsgID(buf[:0], storeHost, commitLogOffset))
}

// ParseOffsetMsgID decodes an offset message id (either case) into the store
// host and commit-log offset. It returns ErrBadMsgID for anything else.
func ParseOffsetMsgID(id string) (storeHost netip.AddrPort, commitLogOffset int64, err error) {
	if len(id) != 32 && len(id) != 56 {
		return netip.AddrPort{}, 0, ErrBadMsgID
	}
	var raw [28]byte
	n, err := hex.Decode(raw[:], []byte(id))
	if err != nil {
		return netip.AddrPort{}, 0, ErrBadMsgID
	}
	alen := n - 12
	var addr netip.Addr
	if alen == 4 {
		addr = netip.AddrFrom4([4]byte(raw[:4]))
	} else {
		addr = netip.AddrFrom16([16]byte(raw[:16]))
	}
	port := binary.BigEndian.Uint32(raw[alen:])
	if port > 0xFFFF {
		return netip.AddrPort{}, 0, ErrBadMsgID
	}
	off := int64(binary.BigEndian.Uint64(raw[alen+4:]))
	return netip.AddrPortFrom(addr, uint16(port)), off, nil
}

const upperHex = "0123456789ABCDEF"

func appendUpperHex(dst, b []byte) []byte {
	for _, c := range b {
		dst = append(dst, upperHex[c>>4], upperHex[c&0xF])
	}
	return dst
}

// UniqIDGenerator makes client message ids (the UNIQ_KEY property) in the
// Java layout: hex of ip(4) + pid(2) + hash(4) + ms since the start of the
// month(4) + counter(2), 32 uppercase hex digits. Servers treat UNIQ_KEY as
// opaque; this helper exists for components that produce messages themselves
// (our client, the broker's schedule and transaction services). It is safe
// for concurrent use.
type UniqIDGenerator struct {
	prefix [10]byte // ip, pid, hash

	mu struct {
		sync.Mutex
		monthStart time.Time // Protected by mu.
		counter    uint16    // Protected by mu.
	}
}

// NewUniqIDGenerator returns a generator for the given host address (only
// IPv4 addresses are used; others give zeros) and a process-unique seed
// (0 means the process id).
func NewUniqIDGenerator(ip netip.Addr, seed int) *UniqIDGenerator {
	g := &UniqIDGenerator{}
	if ip = ip.Unmap(); ip.Is4() {
		b := ip.As4()
		copy(g.prefix[:4], b[:])
	}
	if seed == 0 {
		seed = os.Getpid()
	}
	binary.BigEndian.PutUint16(g.prefix[4:], uint16(seed))
	binary.BigEndian.PutUint32(g.prefix[6:], uint32(seed)*2654435761)
	return g
}

// Next returns a new id for the current time.
func (g *UniqIDGenerator) Next() string { return g.NextAt(time.Now()) }

// NextAt returns a new id for time now.
func (g *UniqIDGenerator) NextAt(now time.Time) string {
	var out [32]byte
	return string(g.AppendNextAt(out[:0], now))
}

// AppendNextAt appends a new id for time now to dst.
func (g *UniqIDGenerator) AppendNextAt(dst []byte, now time.Time) []byte {
	g.mu.Lock()
	if now.Before(g.mu.monthStart) || !now.Before(g.mu.monthStart.AddDate(0, 1, 0)) {
		y, m, _ := now.Date()
		g.mu.monthStart = time.Date(y, m, 1, 0, 0, 0, 0, now.Location())
	}
	ms := now.Sub(g.mu.monthStart).Milliseconds()
	g.mu.counter++
	counter := g.mu.counter
	g.mu.Unlock()
	var raw [16]byte
	copy(raw[:], g.prefix[:])
	binary.BigEndian.PutUint32(raw[10:], uint32(ms))
	binary.BigEndian.PutUint16(raw[14:], counter)
	return appendUpperHex(dst, raw[:])
}
