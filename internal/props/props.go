// Package props reads and writes Java properties text, the format of RocketMQ's broker.conf and of
// the config bodies of UPDATE/GET_*_CONFIG. It covers what those files use: key=value or key:value
// lines, # and ! comments, and surrounding white space; not line continuations or escapes.
package props

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Parse reads properties text. A non-empty line that is neither a comment nor a key/value pair is an
// error naming the line. A repeated key keeps its last value, as Java does.
func Parse(text string) (map[string]string, error) {
	props := make(map[string]string)
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		sep := strings.IndexAny(line, "=:")
		if sep <= 0 {
			return nil, fmt.Errorf("line %d %q is not key=value", i+1, line)
		}
		props[strings.TrimSpace(line[:sep])] = strings.TrimSpace(line[sep+1:])
	}
	return props, nil
}

// Format writes properties text, keys sorted, one key=value per line.
func Format(props map[string]string) string {
	var sb strings.Builder
	for _, k := range slices.Sorted(maps.Keys(props)) {
		fmt.Fprintf(&sb, "%s=%s\n", k, props[k])
	}
	return sb.String()
}
