package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestDefaults(t *testing.T) {
	cfg, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "localhost:8080" || cfg.IdleTimeout != 30*time.Minute || cfg.Lifetime != 12*time.Hour ||
		!cfg.MigrateOnStart || cfg.SecureCookies() || cfg.TrustedProxies != nil ||
		cfg.StartupTimeout != 30*time.Second || cfg.SweepInterval != 5*time.Minute || cfg.RedisMaxConnections != 64 ||
		cfg.SignUpRatePerIP != 30 || cfg.PasswordConcurrencyPerIP != 4 {
		t.Fatalf("unexpected defaults: %+v", cfg)
	}
}

func TestHTTPSBaseURLMeansSecureCookies(t *testing.T) {
	cfg, err := Load(env(map[string]string{"BASE_URL": "https://id.example.com", "SECRET_KEY": strings.Repeat("k", 32)}))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.SecureCookies() {
		t.Fatal("https BASE_URL did not turn on secure cookies")
	}
}

func TestBadValuesNameTheVariable(t *testing.T) {
	for name, value := range map[string]string{
		"BASE_URL":              "ftp://example.com",
		"DATABASE_URL":          "mysql://root@localhost/db",
		"REDIS_URL":             "not a url",
		"SESSION_IDLE_TIMEOUT":  "soon",
		"SESSION_LIFETIME":      "-1h",
		"MIGRATE_ON_START":      "perhaps",
		"TRUST_PROXY":           "2",
		"SHUTDOWN_TIMEOUT":      "0s",
		"REAUTH_WINDOW":         "10",
		"MAX_SESSIONS_PER_USER": "0",
		"STARTUP_TIMEOUT":       "-5s",
		"SWEEP_INTERVAL":        "often",
		"REDIS_MAX_CONNECTIONS": "0",
		"REDIS_PREFIX":          "gh:{x}:",
		"REDIS_REVOKE_REPLICAS": "-1",
	} {
		_, err := Load(env(map[string]string{name: value}))
		if err == nil || !strings.Contains(err.Error(), name+"=") {
			t.Errorf("%s=%q: error %v does not name the variable", name, value, err)
		}
	}
}

func TestIdleTimeoutMustNotExceedLifetime(t *testing.T) {
	_, err := Load(env(map[string]string{"SESSION_IDLE_TIMEOUT": "2h", "SESSION_LIFETIME": "1h"}))
	if err == nil || !strings.Contains(err.Error(), "SESSION_IDLE_TIMEOUT") {
		t.Fatalf("got %v", err)
	}
}

func TestEveryBadValueIsReportedAtOnce(t *testing.T) {
	_, err := Load(env(map[string]string{"ADDR": "", "SESSION_LIFETIME": "x", "TRUST_PROXY": "x"}))
	if err == nil || !strings.Contains(err.Error(), "SESSION_LIFETIME") || !strings.Contains(err.Error(), "TRUST_PROXY") {
		t.Fatalf("got %v", err)
	}
}

func TestTrustProxy(t *testing.T) {
	for value, want := range map[string]string{
		"":                           "",
		"false":                      "",
		"0":                          "",
		"true":                       "127.0.0.0/8 ::1/128",
		"10.0.0.5":                   "10.0.0.5/32",
		" 10.0.0.0/8, 2001:db8::1 ":  "10.0.0.0/8 2001:db8::1/128",
		"192.168.1.7/24,172.16.0.10": "192.168.1.0/24 172.16.0.10/32",
	} {
		cfg, err := Load(env(map[string]string{"TRUST_PROXY": value}))
		if err != nil {
			t.Errorf("TRUST_PROXY=%q: %v", value, err)
			continue
		}
		var got []string
		for _, r := range cfg.TrustedProxies {
			got = append(got, r.String())
		}
		if strings.Join(got, " ") != want {
			t.Errorf("TRUST_PROXY=%q trusts %v, want %q", value, got, want)
		}
	}
	for _, value := range []string{"yes", "10.0.0.300", "10.0.0.0/33", "10.0.0.1,,10.0.0.2", "proxy.internal"} {
		_, err := Load(env(map[string]string{"TRUST_PROXY": value}))
		if err == nil || !strings.Contains(err.Error(), "TRUST_PROXY=") || !strings.Contains(err.Error(), "comma-separated") {
			t.Errorf("TRUST_PROXY=%q: error %v, want one naming the variable and the list form", value, err)
		}
	}
}

func TestRedisMaxConnections(t *testing.T) {
	cfg, err := Load(env(map[string]string{"REDIS_MAX_CONNECTIONS": "8"}))
	if err != nil || cfg.RedisMaxConnections != 8 {
		t.Fatalf("REDIS_MAX_CONNECTIONS=8: %d, %v", cfg.RedisMaxConnections, err)
	}
	for _, bad := range []string{"-1", "many", "1.5"} {
		if _, err := Load(env(map[string]string{"REDIS_MAX_CONNECTIONS": bad})); err == nil || !strings.Contains(err.Error(), "REDIS_MAX_CONNECTIONS=") {
			t.Errorf("REDIS_MAX_CONNECTIONS=%q: error %v", bad, err)
		}
	}
}

func TestPerIPCaps(t *testing.T) {
	cfg, err := Load(env(map[string]string{"SIGNUP_RATE_PER_IP": "0", "PASSWORD_CONCURRENCY_PER_IP": "0"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SignUpRatePerIP != 0 || cfg.PasswordConcurrencyPerIP != 0 {
		t.Fatalf("caps %d, %d; want 0 (off)", cfg.SignUpRatePerIP, cfg.PasswordConcurrencyPerIP)
	}
	for name, value := range map[string]string{"SIGNUP_RATE_PER_IP": "-1", "PASSWORD_CONCURRENCY_PER_IP": "many"} {
		_, err := Load(env(map[string]string{name: value}))
		if err == nil || !strings.Contains(err.Error(), name+"=") {
			t.Errorf("%s=%q: error %v does not name the variable", name, value, err)
		}
	}
}

func TestRedisIsOneOfThree(t *testing.T) {
	cfg, err := Load(env(nil))
	if err != nil || cfg.Redis.Mode() != "single" || cfg.Redis.URL != DefaultRedisURL {
		t.Fatalf("no Redis set: %+v, %v, want the local default", cfg.Redis, err)
	}
	cfg, err = Load(env(map[string]string{"REDIS_SENTINEL_ADDRS": "10.0.0.1:26379, 10.0.0.2:26379", "REDIS_SENTINEL_MASTER": "gh",
		"REDIS_PASSWORD": "pw", "REDIS_TLS": "true"}))
	if err != nil || cfg.Redis.Mode() != "sentinel" || len(cfg.Redis.SentinelAddrs) != 2 || cfg.Redis.URL != "" ||
		cfg.Redis.Password != "pw" || !cfg.Redis.TLS {
		t.Fatalf("sentinel: %+v, %v", cfg.Redis, err)
	}
	cfg, err = Load(env(map[string]string{"REDIS_CLUSTER_ADDRS": "10.0.0.1:6379"}))
	if err != nil || cfg.Redis.Mode() != "cluster" || cfg.Redis.ClusterAddrs[0] != "10.0.0.1:6379" {
		t.Fatalf("cluster: %+v, %v", cfg.Redis, err)
	}
	// More than one stops start-up, naming them.
	_, err = Load(env(map[string]string{"REDIS_URL": "redis://x:6379", "REDIS_CLUSTER_ADDRS": "10.0.0.1:6379"}))
	if err == nil || !strings.Contains(err.Error(), "REDIS_URL and REDIS_CLUSTER_ADDRS") {
		t.Errorf("REDIS_URL and REDIS_CLUSTER_ADDRS: error %v", err)
	}
	_, err = Load(env(map[string]string{"REDIS_SENTINEL_ADDRS": "a:1", "REDIS_SENTINEL_MASTER": "m", "REDIS_CLUSTER_ADDRS": "b:2", "REDIS_URL": "redis://c:3"}))
	if err == nil || !strings.Contains(err.Error(), "REDIS_URL and REDIS_SENTINEL_ADDRS and REDIS_CLUSTER_ADDRS") {
		t.Errorf("all three: error %v", err)
	}
	for vars, name := range map[*map[string]string]string{
		{"REDIS_SENTINEL_ADDRS": "10.0.0.1:26379"}:                         "REDIS_SENTINEL_MASTER",
		{"REDIS_SENTINEL_ADDRS": "10.0.0.1", "REDIS_SENTINEL_MASTER": "m"}: "REDIS_SENTINEL_ADDRS",
		{"REDIS_CLUSTER_ADDRS": "a:1,,b:2"}:                                "REDIS_CLUSTER_ADDRS",
		{"REDIS_TLS": "maybe", "REDIS_CLUSTER_ADDRS": "a:1"}:               "REDIS_TLS",
	} {
		if _, err := Load(env(*vars)); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%v: error %v does not name %s", *vars, err, name)
		}
	}
}

func TestSecretKeyRequiredUnlessLoopback(t *testing.T) {
	long := strings.Repeat("s", 32)
	for _, tc := range []struct {
		base, key string
		ok, dev   bool
	}{
		{"http://localhost:8080", "", true, true},
		{"http://127.0.0.1:8080", "", true, true},
		{"http://[::1]:8080", "", true, true},
		{"http://app.localhost", "", true, true},
		{"https://id.example.com", "", false, false},
		{"http://10.0.0.5:8080", "", false, false},
		{"http://localhost.example.com", "", false, false},
		{"https://id.example.com", long, true, false},
		{"https://id.example.com", long[:31], false, false},
		{"http://localhost:8080", long[:31], false, true},
	} {
		cfg, err := Load(env(map[string]string{"BASE_URL": tc.base, "SECRET_KEY": tc.key}))
		if (err == nil) != tc.ok {
			t.Errorf("BASE_URL=%s SECRET_KEY of %d bytes: err %v", tc.base, len(tc.key), err)
			continue
		}
		if err != nil {
			if !strings.Contains(err.Error(), "SECRET_KEY") || (tc.key != "" && strings.Contains(err.Error(), tc.key)) {
				t.Errorf("error does not name SECRET_KEY, or shows it: %v", err)
			}
			continue
		}
		if cfg.Development() != tc.dev || (tc.key == "") != (cfg.SecretKey == nil) {
			t.Errorf("BASE_URL=%s: development %v, key %q", tc.base, cfg.Development(), cfg.SecretKey)
		}
	}
}

func TestMailSettings(t *testing.T) {
	cfg, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SMTPURL != "" || !cfg.DevMailbox() || cfg.MailFrom.Address != "no-reply@localhost" || cfg.MailGiveUpAfter != 24*time.Hour {
		t.Fatalf("mail defaults: %q %v %v %v", cfg.SMTPURL, cfg.DevMailbox(), cfg.MailFrom, cfg.MailGiveUpAfter)
	}
	for base, dev := range map[string]bool{"http://127.0.0.1:8080": true, "http://[::1]:8080": true,
		"https://id.example.com": false, "http://10.0.0.5": false} {
		cfg, err := Load(env(map[string]string{"BASE_URL": base, "SECRET_KEY": strings.Repeat("k", 32)}))
		if err != nil || cfg.DevMailbox() != dev {
			t.Errorf("BASE_URL=%s: dev mailbox %v (%v), want %v", base, cfg.DevMailbox(), err, dev)
		}
	}
	cfg, err = Load(env(map[string]string{"SMTP_URL": "smtps://u:p@mail.example.com", "MAIL_FROM": "Acme ID <id@acme.example>"}))
	if err != nil || cfg.DevMailbox() || cfg.MailFrom.Name != "Acme ID" {
		t.Fatalf("with SMTP_URL: %v %v %v", err, cfg.DevMailbox(), cfg.MailFrom)
	}
	for name, value := range map[string]string{
		"SMTP_URL":           "http://mail.example.com",
		"MAIL_FROM":          "id@acme.example\r\nBcc: victim@example.com",
		"MAIL_GIVE_UP_AFTER": "never",
	} {
		_, err := Load(env(map[string]string{name: value}))
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%q: %v", name, value, err)
		}
	}
	// A bad SMTP_URL's password is not repeated in the error.
	_, err = Load(env(map[string]string{"SMTP_URL": "ftp://user:hunter2@mail.example.com"}))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error %v", err)
	}
}

func TestDevSecretKeyIsKeptInItsFile(t *testing.T) {
	path := t.TempDir() + "/key"
	first, err := DevSecretKey(path)
	if err != nil || len(first) < MinSecretKeyLen {
		t.Fatalf("first: %q, %v", first, err)
	}
	again, err := DevSecretKey(path)
	if err != nil || string(again) != string(first) {
		t.Fatalf("second read gave another key: %q, %v", again, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v, %v", fi.Mode(), err)
	}
	if err := os.WriteFile(path, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := DevSecretKey(path); err == nil {
		t.Fatal("a short key in the file was taken")
	}
}

// TestAppSessionSettings: the app token settings' defaults, and each bad
// value refused with the variable named: the grace is 0 to 30 s, the idle
// timeout no longer than the lifetime, an access token shorter than the
// idle timeout, and CORS origins bare scheme://host[:port].
func TestAppSessionSettings(t *testing.T) {
	cfg, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AccessTokenTTL != time.Hour || cfg.RefreshGrace != 30*time.Second || cfg.AppIdleTimeout != 7*24*time.Hour ||
		cfg.AppLifetime != 30*24*time.Hour || cfg.CORSOrigins != nil {
		t.Fatalf("app session defaults: %v %v %v %v %v", cfg.AccessTokenTTL, cfg.RefreshGrace, cfg.AppIdleTimeout, cfg.AppLifetime, cfg.CORSOrigins)
	}
	cfg, err = Load(env(map[string]string{"REFRESH_GRACE": "0s", "ACCESS_TOKEN_TTL": "5m",
		"CORS_ORIGINS": "https://app.example.com, http://localhost:3000"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RefreshGrace != 0 || cfg.AccessTokenTTL != 5*time.Minute ||
		strings.Join(cfg.CORSOrigins, " ") != "https://app.example.com http://localhost:3000" {
		t.Fatalf("parsed: %v %v %v", cfg.RefreshGrace, cfg.AccessTokenTTL, cfg.CORSOrigins)
	}
	for _, bad := range []map[string]string{
		{"REFRESH_GRACE": "31s"},
		{"REFRESH_GRACE": "-1s"},
		{"REFRESH_GRACE": "soon"},
		{"ACCESS_TOKEN_TTL": "0s"},
		{"ACCESS_TOKEN_TTL": "200h"},
		{"APP_IDLE_TIMEOUT": "1000h"},
		{"APP_LIFETIME": "1d"},
		{"CORS_ORIGINS": "*"},
		{"CORS_ORIGINS": "https://app.example.com/path"},
		{"CORS_ORIGINS": "app.example.com"},
		{"CORS_ORIGINS": "https://user@app.example.com"},
		{"CORS_ORIGINS": "ftp://app.example.com"},
	} {
		var name string
		for k := range bad {
			name = k
		}
		if _, err := Load(env(bad)); err == nil || !strings.Contains(err.Error(), name+"=") {
			t.Errorf("%v: error %v does not name the variable", bad, err)
		}
	}
}
