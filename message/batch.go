package message

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrBadBatch marks a SEND_BATCH_MESSAGE body that cannot be split into
// messages. Test with errors.Is.
var ErrBadBatch = errors.New("message: malformed batch body")

// batchFixed is the fixed part of one batch item: TOTALSIZE, MAGICCODE,
// BODYCRC, FLAG, BODYLENGTH (4 bytes each) and PROPERTIESLENGTH (2).
const batchFixed = 4*5 + 2

// DecodeBatch splits a SEND_BATCH_MESSAGE body (PROTOCOL.md §4.6) into
// messages carrying Flag, Body and Properties; the caller fills in topic,
// queue and the header-level fields. Bodies alias body. MAGICCODE and BODYCRC
// are ignored, as the Java broker does; TOTALSIZE must equal the item's real
// size. Any inconsistency returns ErrBadBatch and no messages.
func DecodeBatch(body []byte) ([]*Message, error) {
	var msgs []*Message
	for off := 0; off < len(body); {
		rest := body[off:]
		if len(rest) < batchFixed {
			return nil, fmt.Errorf("%w: %d trailing bytes at %d", ErrBadBatch, len(rest), off)
		}
		total := int64(int32(binary.BigEndian.Uint32(rest)))
		flag := int32(binary.BigEndian.Uint32(rest[12:]))
		bodyLen := int64(int32(binary.BigEndian.Uint32(rest[16:])))
		if bodyLen < 0 || bodyLen > int64(len(rest))-batchFixed {
			return nil, fmt.Errorf("%w: body length %d at %d", ErrBadBatch, bodyLen, off)
		}
		p := rest[20+bodyLen:]
		propsLen := int64(int16(binary.BigEndian.Uint16(p)))
		if propsLen < 0 || propsLen > int64(len(p))-2 {
			return nil, fmt.Errorf("%w: properties length %d at %d", ErrBadBatch, propsLen, off)
		}
		if size := batchFixed + bodyLen + propsLen; total != size {
			return nil, fmt.Errorf("%w: total size %d, fields make %d, at %d", ErrBadBatch, total, size, off)
		}
		msgs = append(msgs, &Message{
			Flag:       flag,
			Body:       rest[20 : 20+bodyLen : 20+bodyLen],
			Properties: ParseProperties(string(p[2 : 2+propsLen])),
		})
		off += int(total)
	}
	return msgs, nil
}

// AppendBatch appends the SEND_BATCH_MESSAGE encoding of msgs (Flag, Body and
// Properties of each) to dst, as clients build it. It returns
// ErrPropertiesTooLong or ErrBadProperty and leaves dst unchanged when a
// message's properties cannot be encoded.
func AppendBatch(dst []byte, msgs []*Message) ([]byte, error) {
	start := len(dst)
	for _, m := range msgs {
		if err := ValidateProperties(m.Properties); err != nil {
			return dst[:start], err
		}
		dst = appendBatchItem(dst, m.Flag, m.Body, PropertiesLength(m.Properties))
		dst = AppendProperties(dst, m.Properties)
	}
	return dst, nil
}

// AppendBatchItem appends one item of a SEND_BATCH_MESSAGE body whose properties are already encoded
// (by AppendProperties or the same rules); it returns ErrPropertiesTooLong and leaves dst unchanged
// when they are too long.
func AppendBatchItem(dst []byte, flag int32, body, properties []byte) ([]byte, error) {
	if len(properties) > MaxPropertiesLength {
		return dst, ErrPropertiesTooLong
	}
	return append(appendBatchItem(dst, flag, body, len(properties)), properties...), nil
}

// appendBatchItem appends an item up to its properties, which the caller appends.
func appendBatchItem(dst []byte, flag int32, body []byte, propsLen int) []byte {
	be := binary.BigEndian
	dst = be.AppendUint32(dst, uint32(batchFixed+len(body)+propsLen))
	dst = be.AppendUint32(dst, 0)
	dst = be.AppendUint32(dst, 0)
	dst = be.AppendUint32(dst, uint32(flag))
	dst = be.AppendUint32(dst, uint32(len(body)))
	dst = append(dst, body...)
	return be.AppendUint16(dst, uint16(propsLen))
}
