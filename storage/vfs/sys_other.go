//go:build !linux

package vfs

import "errors"

// Allocate is not portable outside Linux: files stay sparse.
func (f osFile) Allocate(size int64) error { return errors.ErrUnsupported }

func (osFS) Usage(path string) (Usage, error) { return Usage{}, errors.ErrUnsupported }
