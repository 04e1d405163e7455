package session

import "time"

// IdleTimeout is how long a session lives without a request (0: no idle
// timeout). Pages use it to say when a session will end if left unused.
func (m *Manager) IdleTimeout() time.Duration { return m.idle }

// Lifetime is how long a browser session lives at most, however active
// (SESSION_LIFETIME).
func (m *Manager) Lifetime() time.Duration { return m.lifetime }

// AppIdleTimeout is how long an app session lives without a refresh
// (APP_IDLE_TIMEOUT).
func (m *Manager) AppIdleTimeout() time.Duration { return m.app.idle }
