package remoting

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestFields(t *testing.T) {
	f := Fields{"topic", "T", "queueId", "3"}
	if v, ok := f.Get("queueId"); !ok || v != "3" {
		t.Fatalf("Get queueId = %q, %v", v, ok)
	}
	if _, ok := f.Get("T"); ok {
		t.Fatal("a value was found as a key")
	}
	f.Set("topic", "U")
	f.Set("flag", "0")
	if want := (Fields{"topic", "U", "queueId", "3", "flag", "0"}); !slices.Equal(f, want) {
		t.Fatalf("after Set: %q, want %q", f, want)
	}
	f.Delete("queueId")
	if want := (Fields{"topic", "U", "flag", "0"}); !slices.Equal(f, want) || f.Len() != 2 {
		t.Fatalf("after Delete: %q, want %q", f, want)
	}
	var nilFields Fields
	nilFields.Set("k", "v")
	if nilFields.Value("k") != "v" || nilFields.Value("x") != "" {
		t.Fatalf("Set on nil Fields: %q", nilFields)
	}
	// A dangling key is never read as a pair.
	if v, ok := (Fields{"a", "1", "b"}).Get("b"); ok {
		t.Fatalf("dangling key found with value %q", v)
	}
}

// TestRepeatedKeyDecodes: a key given twice keeps its first place and its last value in both header
// forms, so every reader of the command sees the same value.
func TestRepeatedKeyDecodes(t *testing.T) {
	jsonFrame := frameOf(JSON, `{"code":10,"extFields":{"topic":"A","queueId":"1","topic":"B"}}`)
	// The binary form, built by hand since the encoder writes what it is given.
	binaryHeader := appendBinaryHeader(nil, &Command{Code: 10, ExtFields: Fields{"topic", "A", "queueId", "1", "topic", "B"}})
	binaryFrame := append([]byte{byte(RocketMQ), 0, 0, byte(len(binaryHeader))}, binaryHeader...)
	for name, frame := range map[string][]byte{"json": jsonFrame, "binary": binaryFrame} {
		cmd, err := DecodeFrame(frame)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := (Fields{"topic", "B", "queueId", "1"}); !slices.Equal(cmd.ExtFields, want) {
			t.Errorf("%s: fields %q, want %q", name, cmd.ExtFields, want)
		}
	}
}

func frameOf(st SerializeType, header string) []byte {
	return append([]byte{byte(st), 0, byte(len(header) >> 8), byte(len(header))}, header...)
}

// TestExtReaderOrder: fields are found whatever order a handler reads them in, and a missing one is
// reported by name.
func TestExtReaderOrder(t *testing.T) {
	c := &Command{ExtFields: Fields{"a", "1", "b", "2", "c", "3", "d", "4"}}
	for _, order := range [][]string{{"a", "b", "c", "d"}, {"d", "c", "b", "a"}, {"c", "a", "d", "b"}} {
		r := ReadExt(c)
		for _, k := range order {
			if got, want := r.String(k), string(rune('1'+k[0]-'a')); got != want {
				t.Errorf("order %v: %s = %q, want %q", order, k, got, want)
			}
		}
		if r.Err() != nil {
			t.Errorf("order %v: %v", order, r.Err())
		}
	}
	r := ReadExt(c)
	r.String("b")
	r.String("e")
	if err := r.Err(); !errors.Is(err, ErrBadHeader) || !strings.Contains(err.Error(), `"e"`) {
		t.Fatalf("missing field: %v", err)
	}
}

func TestOddFieldsDoNotEncode(t *testing.T) {
	c := NewRequest(10, Fields{"topic", "T", "queueId"}, nil)
	for _, st := range []SerializeType{JSON, RocketMQ} {
		c.SerializeType = st
		if out, err := AppendFrame(nil, c); err == nil || len(out) != 0 {
			t.Fatalf("%v: encoded %d bytes of a header with a dangling key (err %v)", st, len(out), err)
		}
	}
}
