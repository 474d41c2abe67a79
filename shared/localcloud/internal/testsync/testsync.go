// Package testsync holds what the local cloud's package tests share with the goroutines of the
// services under test: a log buffer the handlers write while a test reads, and a clock the test
// moves instead of sleeping.
package testsync

import (
	"bytes"
	"sync"
	"time"
)

// Buffer collects log output from concurrent requests; the zero value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Clock is the time a service is given in place of time.Now.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock is a clock that reads t until it is advanced.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
