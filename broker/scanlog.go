package broker

import (
	"fmt"

	"github.com/apogeemq/apogee/message"
)

// scanLog calls visit for every record of the commit log from offset from to its current end, in log
// order. The view aliases a buffer that is reused: visit must copy what it keeps. Recovery paths use it
// to find what was written just before a crash.
func (b *Broker) scanLog(from int64, visit func(*message.RecordView)) error {
	seg := b.opts.Store.SegmentSize
	buf := make([]byte, 1<<20)
	off := max(from, b.store.MinCommitLogOffset())
	for end := b.store.MaxCommitLogOffset(); off < end; {
		n, err := b.store.ReadCommitLog(off, buf)
		if err != nil {
			return err
		}
		pos, blank, need := 0, false, 0
		for pos+8 <= n {
			size, magic, _ := message.PeekSize(buf[pos:n])
			if magic == message.MagicBlank {
				blank = true
				break
			}
			if size <= 8 {
				return fmt.Errorf("broker: bad record size %d at commit-log offset %d", size, off+int64(pos))
			}
			if pos+int(size) > n {
				need = int(size)
				break
			}
			if v, err := message.ParseRecord(buf[pos:pos+int(size)], false); err == nil {
				visit(&v)
			}
			pos += int(size)
		}
		switch {
		case blank: // the rest of this segment is filler
			off = (off+int64(pos))/seg*seg + seg
		case pos > 0:
			off += int64(pos)
		case need > len(buf):
			buf = make([]byte, need)
		default:
			return fmt.Errorf("broker: cannot read the commit log at %d", off)
		}
	}
	return nil
}

// deliveredCopies finds which of msgs (stored in a system topic with REAL_TOPIC set: scheduled or
// timer messages) already have their delivered copy in the commit log from offset logFrom, and returns
// their queue offsets. A copy is recognised by its topic, born timestamp and body CRC, which delivery
// keeps.
func (b *Broker) deliveredCopies(logFrom int64, msgs []*message.Message) (map[int64]bool, error) {
	type fingerprint struct {
		topic string
		born  int64
		crc   uint32
	}
	index := make(map[fingerprint]int64, len(msgs))
	for _, m := range msgs {
		index[fingerprint{m.Property(message.PropertyRealTopic), m.BornTimestamp, m.BodyCRC}] = m.QueueOffset
	}
	found := make(map[int64]bool)
	if len(index) == 0 {
		return found, nil
	}
	err := b.scanLog(logFrom, func(v *message.RecordView) {
		if off, ok := index[fingerprint{string(v.Topic), v.BornTimestamp, v.BodyCRC}]; ok {
			found[off] = true
		}
	})
	return found, err
}
