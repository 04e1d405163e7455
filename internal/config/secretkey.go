package config

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// DevSecretKeyFile is where a development instance keeps its generated
// SECRET_KEY: in the working directory, ignored by git.
const DevSecretKeyFile = ".gatehouse-secret-key"

// DevSecretKey returns the secret key kept in the file at path, making one
// (48 random bytes, base64) when there is none. Only for development
// (Config.Development): production takes SECRET_KEY from the environment.
// The same key must be used from one run to the next, or stored
// second-factor secrets can no longer be read.
func DevSecretKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key := base64.StdEncoding.EncodeToString(randomBytes(48))
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return DevSecretKey(path) // another process made it first
		} else if err != nil {
			return nil, fmt.Errorf("development secret key: %w", err)
		}
		if _, err := f.WriteString(key + "\n"); err != nil {
			f.Close()
			return nil, fmt.Errorf("development secret key: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("development secret key: %w", err)
		}
		return []byte(key), nil
	}
	if err != nil {
		return nil, fmt.Errorf("development secret key: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if len(key) < MinSecretKeyLen {
		return nil, fmt.Errorf("development secret key in %s: shorter than %d bytes; delete the file to make a new one", path, MinSecretKeyLen)
	}
	return []byte(key), nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return b
}
