package message

import (
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Message is one message as the broker stores and delivers it.
//
// A producer fills Topic, Flag, Body and Properties; the broker adds QueueID,
// SysFlag, BornTimestamp, BornHost, StoreHost, ReconsumeTimes and
// PreparedTransactionOffset before it hands the message to the store. The
// store assigns QueueOffset, CommitLogOffset and StoreTimestamp at append.
// DecodeRecord fills every field, including StoreSize and BodyCRC.
type Message struct {
	Topic      string
	QueueID    int32
	Flag       int32
	Body       []byte
	Properties map[string]string
	// EncodedProperties holds the properties in their wire form (name\x01value, items joined by
	// \x02) when Properties is nil: the broker stores a sent message's properties as they came
	// instead of building a map and encoding it again. Whoever sets it guarantees the form (no empty
	// name or value, no \x01 in a value). Property, Tags, Keys and UniqKey read either form;
	// SetProperty and DeleteProperty turn it into Properties first.
	EncodedProperties string

	SysFlag                   int32
	BornTimestamp             int64 // ms since the epoch, from the producer
	BornHost                  netip.AddrPort
	StoreTimestamp            int64 // ms since the epoch, broker time at append
	StoreHost                 netip.AddrPort
	ReconsumeTimes            int32
	PreparedTransactionOffset int64

	QueueOffset     int64  // index in the consume queue (assigned by the store)
	CommitLogOffset int64  // byte offset of the record in the commit log
	StoreSize       int32  // TOTALSIZE of the stored record (decode only)
	BodyCRC         uint32 // BODYCRC of the stored record (decode only)
}

// Property returns the value of the named property, or "".
func (m *Message) Property(name string) string {
	if m.Properties == nil && m.EncodedProperties != "" {
		return lookupEncoded(m.EncodedProperties, name)
	}
	return m.Properties[name]
}

// SetProperty sets a property, allocating the map if needed.
func (m *Message) SetProperty(name, value string) {
	m.decodeProperties()
	if m.Properties == nil {
		m.Properties = make(map[string]string)
	}
	m.Properties[name] = value
}

// DeleteProperty removes a property.
func (m *Message) DeleteProperty(name string) {
	m.decodeProperties()
	delete(m.Properties, name)
}

// decodeProperties moves EncodedProperties into Properties.
func (m *Message) decodeProperties() {
	if m.Properties == nil && m.EncodedProperties != "" {
		m.Properties = ParseProperties(m.EncodedProperties)
	}
	m.EncodedProperties = ""
}

// IndexedProperties returns the three properties the store indexes a message by, in one pass over
// the encoded form.
func (m *Message) IndexedProperties() (tags, keys, uniqKey string) {
	if m.Properties != nil || m.EncodedProperties == "" {
		return m.Properties[PropertyTags], m.Properties[PropertyKeys], m.Properties[PropertyUniqKey]
	}
	for s := m.EncodedProperties; s != ""; {
		var name, value string
		name, value, s = CutProperty(s)
		switch name {
		case PropertyTags:
			tags = value
		case PropertyKeys:
			keys = value
		case PropertyUniqKey:
			uniqKey = value
		}
	}
	return tags, keys, uniqKey
}

// Tags returns the TAGS property ("" when the message has no tag).
func (m *Message) Tags() string { return m.Property(PropertyTags) }

// Keys returns the KEYS property split on spaces, without empty items.
func (m *Message) Keys() []string { return strings.Fields(m.Property(PropertyKeys)) }

// UniqKey returns the UNIQ_KEY property (the client message id), or "".
func (m *Message) UniqKey() string { return m.Property(PropertyUniqKey) }

// OffsetMsgID returns the offset message id built from StoreHost and
// CommitLogOffset (PROTOCOL.md §4.5).
func (m *Message) OffsetMsgID() string { return OffsetMsgID(m.StoreHost, m.CommitLogOffset) }

// MsgID returns the id clients show as the message id: UNIQ_KEY when present,
// else the offset message id (what rocketmq-client-go does).
func (m *Message) MsgID() string {
	if u := m.UniqKey(); u != "" {
		return u
	}
	return m.OffsetMsgID()
}

// TagsCode returns the consume-queue tags code of the message: the Java
// String.hashCode of its TAGS property, or 0 when it has none.
func (m *Message) TagsCode() int64 { return TagsCode(m.Tags()) }

// TagsCode returns the Java String.hashCode of tag (computed over UTF-16 code
// units, as an int32), sign-extended to int64 the way RocketMQ stores it in
// the consume queue. An empty tag has code 0.
func TagsCode(tag string) int64 { return int64(HashMore(0, tag)) }

// HashMore continues a Java String.hashCode computation: HashMore(h(a), b)
// is h(a+b), counting UTF-16 code units as Java does. HashMore(0, s) is the
// hash of s.
func HashMore(h int32, s string) int32 {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x80 { // ASCII fast path
			h = 31*h + int32(c)
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size - 1
		if r >= 0x10000 {
			// Supplementary characters are two UTF-16 code units.
			r -= 0x10000
			h = 31*h + int32(0xD800+(r>>10))
			h = 31*h + int32(0xDC00+(r&0x3FF))
			continue
		}
		h = 31*h + int32(r)
	}
	return h
}
