package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// devDelayAdminSecret returns the file of the delay.admin.secret qmq dev
// gives its metaserver and delay server, so that qmq tools CancelDelay works
// out of the box; generated once, like the admin token, and kept.
func devDelayAdminSecret(confDir string) (string, error) {
	file := filepath.Join(confDir, "delay-admin.secret")
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		if err := os.WriteFile(file, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("writing the delay admin secret (CancelDelay): %w", err)
		}
	} else if err != nil {
		return "", fmt.Errorf("reading the delay admin secret (CancelDelay): %w", err)
	}
	return file, nil
}
