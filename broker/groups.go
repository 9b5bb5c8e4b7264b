package broker

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/apogeemq/apogee/remoting/body"
)

// groupTable is the broker's consumer-group configuration, persisted in config/subscriptionGroup.json.
type groupTable struct {
	path       string
	autoCreate bool
	mu         struct {
		sync.RWMutex
		groups  map[string]*body.SubscriptionGroupConfig
		version body.DataVersion
	}
}

func openGroupTable(path string, autoCreate bool) (*groupTable, error) {
	g := &groupTable{path: path, autoCreate: autoCreate}
	var file body.SubscriptionGroupWrapper
	if err := loadJSON(path, &file); err != nil {
		return nil, fmt.Errorf("broker: subscription groups: %w", err)
	}
	g.mu.groups = file.SubscriptionGroupTable
	if g.mu.groups == nil {
		g.mu.groups = make(map[string]*body.SubscriptionGroupConfig)
	}
	for name, c := range g.mu.groups {
		if c == nil {
			delete(g.mu.groups, name)
		}
	}
	g.mu.version = file.DataVersion
	return g, nil
}

// get returns a copy of a group's config; with auto-creation on, an unknown group is created with
// the defaults. nil means the group does not exist.
func (g *groupTable) get(name string) (*body.SubscriptionGroupConfig, error) {
	g.mu.RLock()
	c := g.mu.groups[name]
	g.mu.RUnlock()
	if c != nil {
		cc := *c
		return &cc, nil
	}
	if !g.autoCreate {
		return nil, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if c := g.mu.groups[name]; c != nil {
		cc := *c
		return &cc, nil
	}
	c = body.NewSubscriptionGroupConfig(name)
	g.mu.groups[name] = c
	if err := g.saveLocked(); err != nil {
		delete(g.mu.groups, name)
		return nil, err
	}
	cc := *c
	return &cc, nil
}

// put creates or replaces a group's config.
func (g *groupTable) put(c *body.SubscriptionGroupConfig) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	cc := *c
	g.mu.groups[c.GroupName] = &cc
	return g.saveLocked()
}

// delete removes a group's config.
func (g *groupTable) delete(name string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.mu.groups[name]; !ok {
		return nil
	}
	delete(g.mu.groups, name)
	return g.saveLocked()
}

func (g *groupTable) saveLocked() error {
	g.mu.version.Counter++
	g.mu.version.Timestamp = time.Now().UnixMilli()
	if err := saveJSON(g.path, g.wrapperLocked()); err != nil {
		return fmt.Errorf("broker: save subscription groups: %w", err)
	}
	return nil
}

func (g *groupTable) wrapperLocked() *body.SubscriptionGroupWrapper {
	w := &body.SubscriptionGroupWrapper{SubscriptionGroupTable: make(map[string]*body.SubscriptionGroupConfig, len(g.mu.groups)), DataVersion: g.mu.version}
	for name, c := range g.mu.groups {
		cc := *c
		w.SubscriptionGroupTable[name] = &cc
	}
	return w
}

// wrapper returns a copy of the table with its version.
func (g *groupTable) wrapper() *body.SubscriptionGroupWrapper {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.wrapperLocked()
}

// names returns every group name, sorted.
func (g *groupTable) names() []string {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return slices.Sorted(maps.Keys(g.mu.groups))
}
