package timer

import (
	"errors"
	"testing"
	"time"
)

func TestDeliverTime(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	max := 72 * time.Hour
	for _, c := range []struct {
		props   map[string]string
		at      int64 // ms after now
		isTimer bool
		illegal bool
	}{
		{props: nil},
		{props: map[string]string{PropertyDelaySec: "10", PropertyDelayMs: "5", PropertyDeliverMs: "1"}, at: 10_000, isTimer: true},
		{props: map[string]string{PropertyDelayMs: "1500", PropertyDeliverMs: "1"}, at: 1500, isTimer: true},
		{props: map[string]string{PropertyDeliverMs: "1700000000250"}, at: 250, isTimer: true},
		{props: map[string]string{PropertyDeliverMs: "1699999999000"}, at: -1000},
		{props: map[string]string{PropertyDelaySec: "259200"}, at: 259_200_000, isTimer: true},
		{props: map[string]string{PropertyDelaySec: "259201"}, illegal: true},
		{props: map[string]string{PropertyDelayMs: "x"}, illegal: true},
		{props: map[string]string{PropertyDeliverMs: "1700259200001"}, illegal: true},
	} {
		at, isTimer, err := DeliverTime(func(k string) string { return c.props[k] }, func() time.Time { return now }, max)
		if c.illegal {
			if !errors.Is(err, ErrIllegal) {
				t.Errorf("%v: err %v, want ErrIllegal", c.props, err)
			}
			continue
		}
		if err != nil || isTimer != c.isTimer || (c.props != nil && at.Sub(now) != time.Duration(c.at)*time.Millisecond) {
			t.Errorf("%v: %v %t %v, want +%d ms %t", c.props, at.Sub(now), isTimer, err, c.at, c.isTimer)
		}
	}
}
