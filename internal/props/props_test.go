package props

import (
	"reflect"
	"testing"
)

func TestParseAndFormat(t *testing.T) {
	got, err := Parse("# comment\n! also\nbrokerName = broker-a\nnamesrvAddr=127.0.0.1:9876;127.0.0.2:9876\n\nlistenPort:10911\r\nempty=\n")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"brokerName": "broker-a", "namesrvAddr": "127.0.0.1:9876;127.0.0.2:9876", "listenPort": "10911", "empty": ""}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v", got)
	}
	if text := Format(map[string]string{"b": "2", "a": "1"}); text != "a=1\nb=2\n" {
		t.Fatalf("format %q", text)
	}
	if _, err := Parse("ok=1\njunk line\n"); err == nil || err.Error() != `line 2 "junk line" is not key=value` {
		t.Fatalf("got %v", err)
	}
}
