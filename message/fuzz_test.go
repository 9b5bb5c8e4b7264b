package message

import (
	"maps"
	"net/netip"
	"strings"
	"testing"
)

func FuzzDecodeRecord(f *testing.F) {
	rec, _ := AppendRecord(nil, exampleMessage())
	f.Add(rec)
	m := exampleMessage()
	m.BornHost = netip.MustParseAddrPort("[2001:db8::2]:1")
	rec6, _ := AppendRecord(nil, m)
	f.Add(rec6)
	f.Add(append(rec, rec...))
	f.Add([]byte{0, 0, 0, 8, 0xcb, 0xd4, 0x31, 0x94})
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := DecodeRecords(b)
		total := 0
		for _, m := range msgs {
			total += int(m.StoreSize)
			if m.StoreSize < MinRecordSize || BodyCRC(m.Body) != m.BodyCRC {
				t.Fatalf("accepted inconsistent record %+v", m)
			}
		}
		if total > len(b) || (err == nil && total != len(b)) {
			t.Fatalf("sizes add to %d of %d (err %v)", total, len(b), err)
		}
		if v, err := ParseRecord(b, false); err == nil && int(v.TotalSize) > len(b) {
			t.Fatal("view larger than input")
		}
	})
}

func FuzzParseProperties(f *testing.F) {
	f.Add("TAGS\x01A\x02UNIQ_KEY\x01C0000201")
	f.Add("TAGS\x01TagA\x02KEYS\x01k1 k2\x02")
	f.Add("\x01\x02\x01")
	f.Fuzz(func(t *testing.T, s string) {
		p := ParseProperties(s)
		for k, v := range p {
			if k == "" || v == "" || strings.Contains(k, "\x02") || strings.Contains(v, "\x02") {
				t.Fatalf("bad item %q=%q", k, v)
			}
			if got, ok := LookupProperty([]byte(s), k); !ok || (string(got) != v) {
				t.Fatalf("LookupProperty(%q) = %q, map has %q", k, got, v)
			}
		}
		if ValidateProperties(p) == nil {
			if again := ParseProperties(string(AppendProperties(nil, p))); !maps.Equal(again, p) && len(p) > 0 {
				t.Fatalf("round trip %v -> %v", p, again)
			}
		}
	})
}

func FuzzDecodeBatch(f *testing.F) {
	body, _ := AppendBatch(nil, []*Message{
		{Body: []byte("batch-0"), Properties: map[string]string{"TAGS": "TagA"}},
		{Flag: 3, Body: []byte("b"), Properties: map[string]string{"KEYS": "k"}},
	})
	f.Add(body)
	f.Add(body[:30])
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := DecodeBatch(b)
		if err != nil {
			return
		}
		total := 0
		for _, m := range msgs {
			total += batchFixed + len(m.Body) + PropertiesLength(m.Properties)
		}
		if total > len(b) {
			t.Fatalf("items add to %d of %d bytes", total, len(b))
		}
	})
}

func FuzzParseOffsetMsgID(f *testing.F) {
	f.Add("0A00000100002A9F0000000000001234")
	f.Add(OffsetMsgID(netip.MustParseAddrPort("[2001:db8::1]:10911"), 42))
	f.Fuzz(func(t *testing.T, s string) {
		host, off, err := ParseOffsetMsgID(s)
		if err != nil {
			return
		}
		if len(s) == 32 && OffsetMsgID(host, off) != strings.ToUpper(s) {
			t.Fatalf("%s re-encodes as %s", s, OffsetMsgID(host, off))
		}
	})
}
