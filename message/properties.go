package message

import (
	"bytes"
	"errors"
	"iter"
	"slices"
	"strings"
)

// Well-known property names (PROTOCOL.md §5.1).
const (
	PropertyTags                    = "TAGS"
	PropertyKeys                    = "KEYS"
	PropertyUniqKey                 = "UNIQ_KEY"
	PropertyWaitStoreMsgOK          = "WAIT"
	PropertyDelayLevel              = "DELAY"
	PropertyRealTopic               = "REAL_TOPIC"
	PropertyRealQueueID             = "REAL_QID"
	PropertyRetryTopic              = "RETRY_TOPIC"
	PropertyOriginMessageID         = "ORIGIN_MESSAGE_ID"
	PropertyReconsumeTime           = "RECONSUME_TIME"
	PropertyMaxReconsumeTimes       = "MAX_RECONSUME_TIMES"
	PropertyTransactionPrepared     = "TRAN_MSG"
	PropertyProducerGroup           = "PGROUP"
	PropertyTranPreparedQueueOffset = "TRAN_PREPARED_QUEUE_OFFSET"
	PropertyTransactionCheckTimes   = "TRANSACTION_CHECK_TIMES"
	PropertyCheckImmunityTime       = "CHECK_IMMUNITY_TIME_IN_SECONDS"
	PropertyTransactionID           = "__transactionId__"
	PropertyCluster                 = "CLUSTER"
	PropertyMsgRegion               = "MSG_REGION"
	PropertyTraceSwitch             = "TRACE_ON"
	PropertyMinOffset               = "MIN_OFFSET"
	PropertyMaxOffset               = "MAX_OFFSET"
	PropertyConsumeStartTime        = "CONSUME_START_TIME"
	PropertyCorrelationID           = "CORRELATION_ID"
	PropertyReplyToClient           = "REPLY_TO_CLIENT"
	PropertyMessageTTL              = "TTL"
	PropertyMessageType             = "MSG_TYPE"
	PropertyShardingKey             = "SHARDING_KEY"
)

// Separators of the properties string. Part of the wire format.
const (
	NameValueSeparator = '\x01'
	PropertySeparator  = '\x02'
)

// MaxPropertiesLength is the largest encoded properties string a record can
// carry: PROPERTIESLENGTH is a signed int16, and clients drop anything longer.
const MaxPropertiesLength = 32767

// ErrPropertiesTooLong is returned by encoders when the encoded properties
// exceed MaxPropertiesLength.
var ErrPropertiesTooLong = errors.New("message: properties longer than 32767 bytes")

// ErrBadProperty is returned by ValidateProperties for a name or value that
// contains a separator, or an empty name.
var ErrBadProperty = errors.New("message: property name or value contains \\x01 or \\x02, or the name is empty")

// ParseProperties decodes "name\x01value\x02name\x01value..." with or without
// a trailing \x02 (Java writes none, Go writes one). Like the Java decoder it
// skips items whose name or value is empty, and items without \x01. It never
// fails; a nil map is returned for an empty input.
func ParseProperties(s string) map[string]string {
	if s == "" {
		return nil
	}
	m := make(map[string]string, strings.Count(s, "\x02")+1)
	for s != "" {
		var name, value string
		if name, value, s = CutProperty(s); name != "" {
			m[name] = value
		}
	}
	return m
}

// LookupProperty finds the value of name in an encoded properties string
// without allocating. It applies the same rules as ParseProperties; if a name
// appears more than once the last value wins.
func LookupProperty(props []byte, name string) (value []byte, ok bool) {
	for n, v := range Properties(props) {
		if string(n) == name {
			value, ok = v, true
		}
	}
	return value, ok
}

func indexByte(b []byte, c byte) int { return bytes.IndexByte(b, c) }

// CutProperty splits the first item off an encoded properties string with the rules of
// ParseProperties: name and value are empty for an item it would skip.
func CutProperty(s string) (name, value, rest string) {
	item := s
	if end := strings.IndexByte(s, PropertySeparator); end >= 0 {
		item, rest = s[:end], s[end+1:]
	}
	name, value, ok := strings.Cut(item, "\x01")
	if !ok || name == "" || value == "" {
		return "", "", rest
	}
	return name, value, rest
}

// lookupEncoded is LookupProperty for a string: the last value of name, or "".
func lookupEncoded(s, name string) (value string) {
	for s != "" {
		var n, v string
		n, v, s = CutProperty(s)
		if n == name && n != "" {
			value = v
		}
	}
	return value
}

// Properties iterates over the items of an encoded properties string
// without allocating, with the rules of ParseProperties (items without
// \x01, or with an empty name or value, are skipped). The slices alias
// props.
func Properties(props []byte) iter.Seq2[[]byte, []byte] {
	return func(yield func(name, value []byte) bool) {
		for len(props) > 0 {
			item := props
			if end := indexByte(props, PropertySeparator); end >= 0 {
				item, props = props[:end], props[end+1:]
			} else {
				props = nil
			}
			sep := indexByte(item, NameValueSeparator)
			if sep <= 0 || sep == len(item)-1 {
				continue
			}
			if !yield(item[:sep], item[sep+1:]) {
				return
			}
		}
	}
}

// AppendProperties appends the encoding of props to dst, names in sorted
// order, each pair followed by \x02 except the last (the Java form). Items with
// an empty name or value are skipped, as decoders would drop them anyway.
// It does not check lengths or separators; see ValidateProperties.
func AppendProperties(dst []byte, props map[string]string) []byte {
	dst, _ = appendProperties(dst, props, false)
	return dst
}

// appendPropertiesChecked is AppendProperties that also returns
// ErrBadProperty or ErrPropertiesTooLong (with dst extended arbitrarily).
func appendPropertiesChecked(dst []byte, props map[string]string) ([]byte, error) {
	return appendProperties(dst, props, true)
}

func appendProperties(dst []byte, props map[string]string, check bool) ([]byte, error) {
	if len(props) == 0 {
		return dst, nil
	}
	var stack [16]string
	names := stack[:0]
	for k, v := range props {
		if check && (HasSeparator(k) || HasSeparator(v)) {
			return dst, ErrBadProperty
		}
		if k != "" && v != "" {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	start := len(dst)
	for i, k := range names {
		if i > 0 {
			dst = append(dst, PropertySeparator)
		}
		dst = append(dst, k...)
		dst = append(dst, NameValueSeparator)
		dst = append(dst, props[k]...)
	}
	if check && len(dst)-start > MaxPropertiesLength {
		return dst, ErrPropertiesTooLong
	}
	return dst, nil
}

// PropertiesLength returns len(AppendProperties(nil, props)) without encoding.
func PropertiesLength(props map[string]string) int {
	n, items := 0, 0
	for k, v := range props {
		if k != "" && v != "" {
			n += len(k) + 1 + len(v)
			items++
		}
	}
	if items > 1 {
		n += items - 1
	}
	return n
}

// ValidateProperties reports ErrBadProperty if a name or value contains a
// separator, and ErrPropertiesTooLong if the encoding exceeds
// MaxPropertiesLength.
func ValidateProperties(props map[string]string) error {
	for k, v := range props {
		if HasSeparator(k) || HasSeparator(v) {
			return ErrBadProperty
		}
	}
	if PropertiesLength(props) > MaxPropertiesLength {
		return ErrPropertiesTooLong
	}
	return nil
}

// HasSeparator reports whether s contains \x01 or \x02, which a property name
// or value must not. Two IndexByte scans are much faster than
// strings.ContainsAny on the append path.
func HasSeparator(s string) bool {
	return strings.IndexByte(s, NameValueSeparator) >= 0 || strings.IndexByte(s, PropertySeparator) >= 0
}
