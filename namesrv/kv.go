package namesrv

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"sync"

	"github.com/apogeemq/apogee/internal/atomicfile"
)

// OrderTopicConfigNamespace is the KV namespace holding ordered topics' layouts
// ("broker-a:4;broker-b:4"), which RocketMQ attaches to routes as orderTopicConf.
const OrderTopicConfigNamespace = "ORDER_TOPIC_CONFIG"

// KVStore is the NameServer's namespaced key-value configuration (PUT/GET/DELETE_KV_CONFIG). With a
// path it is loaded at start and saved after every change, in RocketMQ's kvConfig.json format, so
// mqadmin-set values survive restarts. It is safe for concurrent use.
type KVStore struct {
	path string
	mu   struct {
		sync.RWMutex
		table map[string]map[string]string
	}
}

type kvFile struct {
	ConfigTable map[string]map[string]string `json:"configTable"`
}

// OpenKVStore loads the store from path; an empty path keeps it in memory only. A missing file is an
// empty store.
func OpenKVStore(path string) (*KVStore, error) {
	s := &KVStore{path: path}
	s.mu.table = make(map[string]map[string]string)
	if path == "" {
		return s, nil
	}
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("namesrv: read kv config: %w", err)
	}
	var f kvFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("namesrv: kv config %s is not valid: %w", path, err)
	}
	for ns, kv := range f.ConfigTable {
		if kv != nil {
			s.mu.table[ns] = kv
		}
	}
	return s, nil
}

// Put sets a value and persists the store.
func (s *KVStore) Put(namespace, key, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	kv := s.mu.table[namespace]
	if kv == nil {
		kv = make(map[string]string)
		s.mu.table[namespace] = kv
	}
	kv[key] = value
	return s.saveLocked()
}

// Get returns a value.
func (s *KVStore) Get(namespace, key string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.mu.table[namespace][key]
	return v, ok
}

// Delete removes a value and persists the store.
func (s *KVStore) Delete(namespace, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	kv := s.mu.table[namespace]
	if _, ok := kv[key]; !ok {
		return nil
	}
	delete(kv, key)
	if len(kv) == 0 {
		delete(s.mu.table, namespace)
	}
	return s.saveLocked()
}

// Namespace returns a copy of one namespace's table, or nil if it has none.
func (s *KVStore) Namespace(namespace string) map[string]string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if kv := s.mu.table[namespace]; len(kv) > 0 {
		return maps.Clone(kv)
	}
	return nil
}

// saveLocked persists the table.
func (s *KVStore) saveLocked() error {
	if s.path == "" {
		return nil
	}
	data, err := json.MarshalIndent(kvFile{ConfigTable: s.mu.table}, "", "\t")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(s.path, data); err != nil {
		return fmt.Errorf("namesrv: save kv config: %w", err)
	}
	return nil
}
